"""The HTTP/SSE gateway (`lash-tasks serve`): sessions, inputs and live events over HTTP."""
