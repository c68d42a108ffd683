//! gatewayd's CGI front-end. Empty for now: its own issue fills it in.
