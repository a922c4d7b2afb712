"""What watches the service: metrics and tracing, hung on the session logic's observer
interface (:mod:`agent_sessions.sessions.observers`); their gRPC interceptors live in
:mod:`agent_sessions.api`."""
