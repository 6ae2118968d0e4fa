"""API service: ExecutionService, WorkflowService and AuthService."""
