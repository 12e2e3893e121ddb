//! The `serverless_jobs` example of the `backends` crate as three OS processes against an
//! emulator served by this test: trigger, background and status share nothing but the
//! server, and the job goes pending, running, succeeded. (The `memory://` and `file://`
//! runs are the backends crate's own test.)
#![allow(clippy::unwrap_used)]

use blobjobs_backends::Catalog;
use blobjobs_test_support::example;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

const TOKEN: &str = "example-token";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulator_carries_the_job_across_processes() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let spec = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let config = blobjobs_emulator::Config::new(Catalog::memory(), TOKEN);
    let server = tokio::spawn(blobjobs_emulator::serve(listener, config, async move {
        let _ = stopped.await;
    }));
    let run = tokio::task::spawn_blocking(move || {
        example::shared_story(&spec, &[("NETLIFY_BLOBS_TOKEN", TOKEN)])
    })
    .await
    .unwrap();
    example::assert_shared_story(&run);
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_is_refused_not_mistaken_for_a_missing_job() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let spec = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let config = blobjobs_emulator::Config::new(Catalog::memory(), TOKEN);
    tokio::spawn(blobjobs_emulator::serve(listener, config, async move {
        let _ = stopped.await;
    }));
    let out = tokio::task::spawn_blocking(move || {
        example::run(
            &["trigger", "--store", &spec],
            &[("NETLIFY_BLOBS_TOKEN", "wrong-token-123")],
            std::time::Duration::from_secs(60),
        )
    })
    .await
    .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unauthorized"), "{stderr}");
    assert!(!stderr.contains("wrong-token-123"), "{stderr}");
    let _ = stop.send(());
}
