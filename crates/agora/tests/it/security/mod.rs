//! Security against the real binary: what a web page, a stranger on the network, a rogue
//! agent or executor, or a task can and cannot do to the cluster.

mod agents;
mod authentication;
mod authorization;
mod changing_routes;
mod decoders;
mod executors;
mod gate;
mod inputs;
mod limits;
mod paths;
mod routes;
mod secrets;
mod tls;
mod users;
