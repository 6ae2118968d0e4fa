-- Active workflows: the version whose triggers are registered, and the
-- webhook routes it registered. A route's path is unique within its tenant;
-- tenants' routes never collide (the tenant is part of the URL).
CREATE TABLE workflow_activations (
    workflow_id   text PRIMARY KEY REFERENCES workflows (id),
    tenant_id     text NOT NULL REFERENCES tenants (id),
    version       integer NOT NULL,
    -- The schedule created for a schedule_trigger; NULL when there is none.
    schedule_id   text,
    activated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE webhook_routes (
    tenant_id    text NOT NULL REFERENCES tenants (id),
    path         text NOT NULL,
    workflow_id  text NOT NULL REFERENCES workflow_activations (workflow_id) ON DELETE CASCADE,
    version      integer NOT NULL,
    node_id      text NOT NULL,
    PRIMARY KEY (tenant_id, path)
);
CREATE INDEX webhook_routes_workflow ON webhook_routes (workflow_id);
