//! Test support for the protocol tests: one emulator per storage engine, and the keys of a
//! listing body.
#![allow(dead_code, clippy::unwrap_used)]

use blobjobs_backends::Catalog;
use blobjobs_emulator::Config;

use crate::common::{self, TOKEN, TestServer};

/// One server per storage engine, each configured by `tweak`.
pub async fn servers_with(tweak: impl Fn(Config) -> Config) -> Vec<(&'static str, TestServer)> {
    vec![
        (
            "memory",
            TestServer::start(tweak(Config::new(Catalog::memory(), TOKEN))).await,
        ),
        ("file", common::file_server(tweak).await),
    ]
}

/// One server per storage engine, with the default configuration.
pub async fn servers() -> Vec<(&'static str, TestServer)> {
    servers_with(|c| c).await
}

/// The keys of a key listing's JSON body, in order.
pub fn keys_of(listing: &serde_json::Value) -> Vec<String> {
    listing["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["key"].as_str().unwrap().to_owned())
        .collect()
}
