//! The loadgen binary against a real shop: the checkout mesh, the storefront (basket,
//! order-query, notification), review and the edge gateway, each in-process on its own
//! ephemeral port and databases (real Postgres, Redis and NATS), driven by short runs over
//! each protocol. The binary is run as a user would run it, and judged by its exit status
//! and its `--json` summary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;

use helpers::Stack;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shoppers_check_out_over_every_protocol_declines_are_declines_and_thresholds_fail_runs() {
    let stack = Stack::start().await;
    for protocol in ["grpc", "rest", "grpc-web"] {
        let run = stack
            .loadgen(&[
                "--protocol",
                protocol,
                "--rate",
                "2",
                "--duration",
                "4s",
                "--arrivals",
                "uniform",
                "--mix",
                "browse=1,checkout=3,account=1",
                "--decline-share",
                "0.5",
                "--coupon-share",
                "0.5",
                "--admin-every",
                "1s",
                "--max-error-rate",
                "0",
            ])
            .await;
        assert_eq!(run.status, Some(0), "{protocol}: {}", run.output);
        let json = run.json.unwrap();
        let checkouts = &json["checkouts"];
        let attempted = checkouts["attempted"].as_u64().unwrap();
        let confirmed = checkouts["confirmed"].as_u64().unwrap();
        let declined = checkouts["declined"].as_u64().unwrap();
        assert!(attempted >= 6, "{protocol}: {checkouts}");
        assert!(
            confirmed > 0,
            "{protocol}: no checkout confirmed: {checkouts}"
        );
        assert!(declined > 0, "{protocol}: no decline: {checkouts}");
        assert_eq!(confirmed + declined, attempted, "{protocol}: {checkouts}");
        assert_eq!(checkouts["failed"], 0, "{protocol}: {checkouts}");
        assert_eq!(json["requests"]["errors"], 0, "{protocol}: {}", run.output);
        assert_eq!(json["run"]["protocol"], protocol);

        let steps = json["steps"].as_array().unwrap();
        let calls = |name: &str| {
            steps
                .iter()
                .find(|s| s["name"] == name)
                .and_then(|s| s["calls"].as_u64())
                .unwrap_or(0)
        };
        for step in [
            "product",
            "reviews",
            "rating",
            "stock",
            "add-item",
            "update-item",
            "checkout",
            "watch-order",
            "notifications",
        ] {
            assert!(
                calls(step) > 0,
                "{protocol}: no {step} call: {}",
                run.output
            );
        }
        // Every order watched settled, and the watch measured how long that took.
        assert_eq!(calls("watch-order"), attempted, "{protocol}");
        let watch = steps.iter().find(|s| s["name"] == "watch-order").unwrap();
        assert!(watch["latency"]["p99_ms"].as_f64().unwrap() > 0.0);
        assert!(
            run.output.contains("checkout:") && run.output.contains("p99"),
            "{protocol}: the table is printed: {}",
            run.output
        );
    }

    // The same shop, for the verdicts (one stack: starting one costs more than these runs).
    let slow = stack
        .loadgen(&[
            "--rate",
            "2",
            "--duration",
            "1s",
            "--mix",
            "checkout=1",
            "--max-p99",
            "1ms",
        ])
        .await;
    assert_eq!(slow.status, Some(1), "{}", slow.output);
    assert!(
        slow.output.contains("FAIL: p99 of checkout"),
        "{}",
        slow.output
    );
    let json = slow.json.unwrap();
    assert_eq!(json["thresholds"]["passed"], false);
    assert!(json["thresholds"]["failures"][0].is_string());

    let locked_out = stack
        .loadgen_as(
            "admin@nowhere.test",
            "not-the-password",
            &["--duration", "1s"],
        )
        .await;
    assert_eq!(locked_out.status, Some(2), "{}", locked_out.output);
    assert!(
        locked_out.output.contains("cannot sign in as the admin"),
        "{}",
        locked_out.output
    );
    assert!(locked_out.json.is_none());
}
