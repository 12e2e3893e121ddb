//! Tests of opening stores from specs: parsing, refusals that never repeat a secret, and
//! where each setting comes from.

use super::*;
use crate::http::{BlobsContext, CONTEXT_ENV, Consistency};
use blobjobs_store_api::ErrorKind;

fn env(pairs: &[(&str, &str)]) -> OpenOptions {
    OpenOptions {
        env: Env::from_pairs(pairs.iter().copied()),
        ..OpenOptions::default()
    }
}

#[test]
fn specs_parse() {
    assert_eq!(StoreSpec::parse("memory://").unwrap(), StoreSpec::Memory);
    assert_eq!(
        StoreSpec::parse("file:///tmp/x").unwrap(),
        StoreSpec::File(PathBuf::from("/tmp/x"))
    );
    assert_eq!(
        StoreSpec::parse("").unwrap(),
        StoreSpec::Netlify(Params::default())
    );
    let StoreSpec::Http { url, params } =
        StoreSpec::parse("http://127.0.0.1:4733?site=s1&mode=api&consistency=eventual").unwrap()
    else {
        panic!("not http");
    };
    assert_eq!(url, "http://127.0.0.1:4733");
    assert_eq!(params.site.as_deref(), Some("s1"));
    assert!(params.api_mode);
    assert_eq!(params.consistency, Some(Consistency::Eventual));
    for bad in [
        "ftp://x",
        "nothing",
        "memory://x",
        "file://",
        "http://?site=a",
        "netlify://host",
    ] {
        assert_eq!(
            StoreSpec::parse(bad).unwrap_err().kind(),
            ErrorKind::InvalidInput,
            "{bad:?}"
        );
    }
}

#[test]
fn tokens_in_specs_are_refused_without_being_repeated() {
    for spec in [
        "http://127.0.0.1:1?token=hunter2secret",
        "http://user:hunter2secret@127.0.0.1:1",
        "netlify://?token=hunter2secret",
    ] {
        let err = StoreSpec::parse(spec).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(!err.to_string().contains("hunter2secret"), "{err}");
    }
}

#[test]
fn http_specs_need_a_token_from_options_or_env() {
    let err = open_store_with("http://127.0.0.1:1", "s", &env(&[])).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let store = open_store_with("http://127.0.0.1:1", "s", &env(&[(TOKEN_ENV, "tok-9")])).unwrap();
    let text = format!("{store:?}");
    assert!(
        text.contains("local-site") && !text.contains("tok-9"),
        "{text}"
    );
    let store = open_store_with(
        "http://127.0.0.1:1?site=mine",
        "s",
        &env(&[(TOKEN_ENV, "t"), (SITE_ID_ENV, "theirs")]),
    )
    .unwrap();
    assert!(format!("{store:?}").contains("\"mine\""));
}

#[test]
fn netlify_specs_read_the_context() {
    let err = open_store_with("netlify://", "s", &env(&[])).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let ctx = BlobsContext {
        site_id: Some("ctx-site".into()),
        token: Some(Token::new("ctx-secret")),
        edge_url: Some("http://127.0.0.1:9".into()),
        uncached_edge_url: Some("http://127.0.0.1:10".into()),
        deploy_id: Some("d1".into()),
        primary_region: Some("dev".into()),
        ..BlobsContext::default()
    };
    let options = env(&[(CONTEXT_ENV, &ctx.encode())]);
    let store = open_store_with("", "jobs", &options).unwrap();
    let text = format!("{store:?}");
    assert!(
        text.contains("ctx-site") && text.contains("site:jobs"),
        "{text}"
    );
    assert!(!text.contains("ctx-secret"));
    let deploy = open_store_with("netlify://?deploy", "x", &options).unwrap();
    assert!(format!("{deploy:?}").contains("deploy:d1:x"));
}

#[test]
fn https_specs_open_only_with_tls() {
    let result = open_store_with("https://127.0.0.1:1", "s", &env(&[(TOKEN_ENV, "t")]));
    if cfg!(feature = "tls") {
        assert!(result.is_ok());
    } else {
        assert_eq!(
            result.err().map(|e| e.kind()),
            Some(ErrorKind::InvalidInput)
        );
    }
}

#[cfg(feature = "tls")]
#[test]
fn the_ca_file_comes_from_options_or_env_and_must_be_readable() {
    let missing = std::env::temp_dir().join("no-such-dir-for-ca/ca.pem");
    let missing = missing.to_str().unwrap();
    let err = open_store_with(
        "https://127.0.0.1:1",
        "s",
        &env(&[(TOKEN_ENV, "t"), (CA_FILE_ENV, missing)]),
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io);
    // The option wins over the environment.
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "no certificates here\n").unwrap();
    let options = OpenOptions {
        extra_root_pem: Some(empty),
        ..env(&[(TOKEN_ENV, "t"), (CA_FILE_ENV, missing)])
    };
    let err = open_store_with("https://127.0.0.1:1", "s", &options).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    // An empty variable is no file.
    assert!(
        open_store_with(
            "https://127.0.0.1:1",
            "s",
            &env(&[(TOKEN_ENV, "t"), (CA_FILE_ENV, "")])
        )
        .is_ok()
    );
}

#[test]
fn s3_specs_parse_and_refuse_keys_without_repeating_them() {
    let spec = StoreSpec::parse(
        "s3://bucket/a/b/?endpoint=http%3A%2F%2F127.0.0.1%3A8333&region=eu-west-1",
    )
    .unwrap();
    assert_eq!(
        spec,
        StoreSpec::S3 {
            bucket: "bucket".into(),
            prefix: "a/b".into(),
            endpoint: Some("http://127.0.0.1:8333".into()),
            region: Some("eu-west-1".into()),
        }
    );
    for bad in [
        "s3://AKIAHUNTER2:hunter2secret@bucket",
        "s3://bucket?secret_access_key=hunter2secret",
        "s3://bucket?aws_session_token=hunter2secret",
        "s3://?endpoint=http://x",
        "s3://bucket?endpoint=",
        "s3://bucket?colour=blue",
    ] {
        let err = StoreSpec::parse(bad).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad:?}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
}

#[cfg(feature = "s3")]
#[test]
fn s3_keys_come_from_the_environment_and_never_show() {
    let spec = "s3://bucket/p?endpoint=http://127.0.0.1:1";
    let err = open_store_with(spec, "s", &env(&[])).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("AWS_ACCESS_KEY_ID"), "{err}");
    let keys = [
        ("AWS_ACCESS_KEY_ID", "AKIATESTKEY"),
        ("AWS_SECRET_ACCESS_KEY", "hunter2secret"),
        ("AWS_SESSION_TOKEN", "hunter2token"),
    ];
    let store = open_store_with(spec, "s", &env(&keys)).unwrap();
    let text = format!("{store:?}");
    assert!(text.contains("127.0.0.1:1/bucket"), "{text}");
    assert!(
        !text.contains("hunter2") && !text.contains("AKIATESTKEY"),
        "{text}"
    );
}

#[test]
fn postgres_specs_hide_the_password() {
    let spec =
        StoreSpec::parse("postgres://me:hunter2secret@db.internal:6543/jobs?sslmode=disable")
            .unwrap();
    let text = format!("{spec:?}");
    assert_eq!(text, "Postgres(PgUrl(postgres://db.internal:6543/jobs))");
    assert!(StoreSpec::parse("postgresql://h/db").is_ok());
}

#[cfg(feature = "postgres")]
#[test]
fn postgres_specs_fill_gaps_from_pg_variables_and_never_show_the_password() {
    let options = env(&[
        ("PGHOST", "127.0.0.1"),
        ("PGPORT", "6543"),
        ("PGUSER", "jobs"),
        ("PGPASSWORD", "hunter2secret"),
        ("PGDATABASE", "blobs"),
    ]);
    let store = open_store_with("postgres://", "s", &options).unwrap();
    let text = format!("{store:?}");
    assert!(text.contains("127.0.0.1:6543/blobs"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
    let store = open_store_with(
        "postgres://u:hunter2secret@127.0.0.1:7000/x?pool_size=2",
        "s",
        &env(&[]),
    )
    .unwrap();
    let text = format!("{store:?}");
    assert!(
        text.contains("127.0.0.1:7000/x") && !text.contains("hunter2"),
        "{text}"
    );
    for bad in [
        "postgres://u:hunter2secret@h/db?pool_size=0",
        "postgres://u@h/db?password=hunter2secret",
        "postgres://u:hunter2secret@h:notaport/db",
    ] {
        let err = open_store_with(bad, "s", &env(&[])).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
}

#[test]
fn memory_and_file_specs_open() {
    assert!(open_store("memory://", "s").is_ok());
    assert!(open_store("memory://", "").is_err());
    let dir = std::env::temp_dir();
    assert!(open_store(&format!("file://{}", dir.display()), "s").is_ok());
}
