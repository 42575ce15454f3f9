//! Tests of the master's decisions, made on a `Master` value over the in-memory registry with
//! no HTTP in between: each test calls the methods the handlers and loops call, then reads what
//! the master decided from its state, the allocator, and the streams of the agents and
//! schedulers involved. Fixtures are in `support`.

mod agents;
mod frameworks;
mod launch;
mod offers;
mod roles;
mod status;
pub(crate) mod support;

#[test]
fn a_tokens_digest_is_lowercase_hex_as_checkpointed() {
    // FIPS 180-2's example: registries written before keep matching.
    assert_eq!(
        super::token_sha256("abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}
