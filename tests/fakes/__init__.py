"""Fakes of external APIs for tests: Kubernetes (``k8s_api``), Nomad
(``nomad_api``), and the shared "run a pod/task as a local process" part
(``process_pods``)."""
