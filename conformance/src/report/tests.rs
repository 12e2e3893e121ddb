//! Tests of the report: its renderings, the grouping by cause and the symptom labels.

use super::*;

fn sample() -> Report {
    Report {
        backend: "mem<1>".into(),
        seed: 7,
        millis: 12,
        cases: vec![
            CaseReport {
                name: "a_works".into(),
                area: "blob_rw".into(),
                scope: Scope::SingleInstance,
                verdict: Verdict::Passed,
                cause: None,
                millis: 1,
            },
            CaseReport {
                name: "b_is_shared".into(),
                area: "cross_instance".into(),
                scope: Scope::CrossInstance,
                verdict: Verdict::Failed {
                    message: "instance 1 saw nothing".into(),
                    timeline: vec!["instance 0: set \"k\" → written".into()],
                    replay: Some("CONFORMANCE_SEED=7".into()),
                },
                cause: Some(crate::causes::NOT_VISIBLE_ACROSS_INSTANCES.into()),
                millis: 2,
            },
        ],
        server_errors: 0,
    }
}

fn failed(name: &str, message: &str, cause: Option<&str>) -> CaseReport {
    CaseReport {
        name: name.into(),
        area: "a".into(),
        scope: Scope::SingleInstance,
        verdict: Verdict::Failed {
            message: message.into(),
            timeline: Vec::new(),
            replay: None,
        },
        cause: cause.map(str::to_owned),
        millis: 0,
    }
}

#[test]
fn failures_group_by_cause_then_by_symptom() {
    let mut r = Report::new("127.0.0.1:4800", 1);
    r.cases = vec![
        failed("a", "whatever a says", Some("GET sends no ETag")),
        failed(
            "b",
            "4 of 4 concurrent only-if-new writes won; exactly one must",
            None,
        ),
        failed("c", "something else", Some("GET sends no ETag")),
        failed(
            "d",
            "16 of 16 concurrent only-if-new writes won; exactly one must\ntimeline",
            None,
        ),
        failed(
            "e",
            "unexpected error (unavailable): PUT site:s/conformance-68a7c0c0aae6/c08/p/a answered 500 (gave up after 2 attempts in 163 ms)",
            None,
        ),
        failed(
            "f",
            "unexpected error (unavailable): PUT site:s/conformance-68a7c0c0aae6/c22/d/sub/1 answered 500 (gave up after 2 attempts in 120 ms)",
            None,
        ),
        failed(
            "g",
            "etag of \"t/a\" from get: got Etag(), expected Etag(\"a8a4819f22\")",
            None,
        ),
        failed(
            "h",
            "etag after overwrite: got Etag(), expected Etag(\"0b1c2d3e4f\")",
            None,
        ),
        failed("i", "size from get-metadata: got 0, expected 1", None),
    ];
    let causes = r.causes();
    let show: Vec<(String, Vec<String>)> = causes
        .iter()
        .map(|c| (c.label.clone(), c.cases.clone()))
        .collect();
    let v = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    assert_eq!(
        show,
        vec![
            ("GET sends no ETag".to_owned(), v(&["a", "c"])),
            (
                "N of N concurrent only-if-new writes won; exactly one must".to_owned(),
                v(&["b", "d"])
            ),
            (
                "unexpected error (unavailable): PUT … answered 500 (gave up after N attempts in N ms)"
                    .to_owned(),
                v(&["e", "f"])
            ),
            ("got Etag(), expected Etag(\"…\")".to_owned(), v(&["g", "h"])),
            (
                "size from get-metadata: got N, expected N".to_owned(),
                v(&["i"])
            ),
        ]
    );
    r.server_errors = 3;
    let text = r.to_text();
    assert!(
        text.contains("diagnosis of 127.0.0.1:4800: 9 failed cases, 5 likely causes\n  GET sends no ETag: 2 cases (a, c)\n"),
        "{text}"
    );
    assert!(
        text.contains("3 operations ended in a server error"),
        "{text}"
    );
    let md = markdown_diagnosis(std::slice::from_ref(&r));
    assert!(md.contains("| GET sends no ETag | 2: `a`, `c` |"), "{md}");
    assert!(markdown_diagnosis(&[sample_passing()]).is_empty());
    assert!(sample_passing().diagnosis_text().is_empty());
    // The cause travels in JSON and JUnit.
    let json = r.to_json_lines();
    assert!(
        json.lines()
            .next()
            .unwrap()
            .contains("\"cause\":\"GET sends no ETag\"")
    );
    assert!(r.to_junit().contains("type=\"GET sends no ETag\""));
}

fn sample_passing() -> Report {
    let mut r = sample();
    r.cases.truncate(1);
    r
}

#[test]
fn writers_render_every_case() {
    let r = sample();
    assert!(!r.passed());
    let text = r.to_text();
    assert!(text.contains("FAILED b_is_shared") && text.contains("CONFORMANCE_SEED=7"));
    let lines: Vec<serde_json::Value> = r
        .to_json_lines()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["verdict"], "failed");
    assert_eq!(lines[1]["scope"], "cross_instance");
    assert_eq!(lines[0]["backend"], "mem<1>");
    let xml = r.to_junit();
    assert!(xml.contains("failures=\"1\"") && xml.contains("mem&lt;1&gt;"));
    let md = markdown_matrix(&[r.clone(), r]);
    assert!(md.contains("| `b_is_shared` | cross-instance | **FAIL** | **FAIL** |"));
}

#[test]
fn assert_passed_panics_with_the_report() {
    let r = sample();
    let err = std::panic::catch_unwind(|| r.assert_passed()).unwrap_err();
    let msg = err.downcast_ref::<String>().unwrap();
    assert!(msg.contains("instance 1 saw nothing"));
}
