//! Shared helpers of the `pve_*` integration tests: start a simulator and
//! a client wired to it.
#![allow(dead_code)]

use std::time::Duration;

use orbitlab_engine::pve::{
    ClientConfig, ClientOptions, Credentials, PveClient, RetryPolicy, Secret, Trust,
};
use orbitlab_sim::pve::{
    DEFAULT_PASSWORD, DEFAULT_TOKEN_SECRET, PveSim, PveVersion, SimConfig, SimHandle,
};

pub fn token() -> Credentials {
    Credentials::token("root@pam", "orbitlab", Secret::new(DEFAULT_TOKEN_SECRET)).expect("token")
}

pub fn password() -> Credentials {
    Credentials::password("root@pam", Secret::new(DEFAULT_PASSWORD)).expect("password")
}

pub fn fast_options() -> ClientOptions {
    ClientOptions {
        timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(2),
        upload_timeout: Duration::from_secs(30),
        retry: RetryPolicy {
            attempts: 3,
            first_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(100),
        },
    }
}

pub fn start(version: PveVersion) -> SimHandle {
    PveSim::start(SimConfig {
        version,
        task_duration: Duration::from_millis(30),
        ..SimConfig::default()
    })
    .expect("simulator starts")
}

pub fn client_for(sim: &SimHandle, creds: Credentials) -> PveClient {
    PveClient::new(ClientConfig {
        base_url: sim.origin(),
        trust: Trust::LoopbackHttp,
        credentials: creds,
        options: fast_options(),
    })
    .expect("client")
}

pub fn sim_and_client(version: PveVersion) -> (SimHandle, PveClient) {
    let sim = start(version);
    let client = client_for(&sim, token());
    (sim, client)
}

pub const DEADLINE: Duration = Duration::from_secs(10);
