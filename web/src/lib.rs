//! HTTP API, web console and the composition root of centralino.
