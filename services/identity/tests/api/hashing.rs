//! Password hashing under its memory budget: a login burst beyond the permits is queued within
//! each caller's deadline or refused with RESOURCE_EXHAUSTED and a retry delay, and hashing
//! never holds a database connection.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mercato::pb::identity::v1::{
    GetMeRequest, IssueTokenRequest, IssueTokenResponse, PasswordGrant, issue_token_request,
};
use mercato_testkit::{TestIdentity, authed};
use tonic::Code;
use tonic_types::StatusExt as _;

use crate::{TEST_KID, TEST_PEM, register};

/// Identity allowed one hash at a time (one hash's memory), with `extra` settings.
async fn identity_with_one_permit(extra: &[(&str, &str)]) -> TestIdentity {
    let mut env = vec![
        ("MERCATO_JWT_PRIVATE_KEY", TEST_PEM),
        ("MERCATO_JWT_KID", TEST_KID),
        ("MERCATO_IDENTITY_HASH_MEMORY_MIB", "19"),
    ];
    env.extend_from_slice(extra);
    TestIdentity::start_with(&env).await
}

/// The password grant with a deadline (`grpc-timeout`) when one is given.
async fn login_within(
    id: &TestIdentity,
    email: &str,
    password: &str,
    deadline: Option<Duration>,
) -> Result<IssueTokenResponse, tonic::Status> {
    let mut request = tonic::Request::new(IssueTokenRequest {
        grant: Some(issue_token_request::Grant::Password(PasswordGrant {
            email: email.into(),
            password: password.into(),
        })),
    });
    if let Some(deadline) = deadline {
        request.set_timeout(deadline);
    }
    id.client()
        .await
        .issue_token(request)
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test]
async fn a_login_burst_beyond_the_permits_is_refused_with_a_retry_delay_not_failed() {
    let id = identity_with_one_permit(&[]).await;
    let (email, password) = register(&id).await;
    // One login on its own: how long a hash takes here (debug builds are slow), and the
    // service's own estimate of it.
    let started = Instant::now();
    login_within(&id, &email, &password, None).await.unwrap();
    let one = started.elapsed();

    // Sixteen at once with room for about six hashes each: the first few are queued and
    // served, the rest cannot be served in time and are told when to come back.
    let deadline = one * 6;
    let outcomes = futures::future::join_all(
        (0..16).map(|_| login_within(&id, &email, &password, Some(deadline))),
    )
    .await;

    let mut served = 0;
    let mut refused = 0;
    for outcome in outcomes {
        match outcome {
            Ok(tokens) => {
                assert!(!tokens.access_token.is_empty());
                served += 1;
            }
            Err(status) => {
                assert_eq!(
                    status.code(),
                    Code::ResourceExhausted,
                    "a saturated login must be refused, not fail: {status:?}"
                );
                let details = status.get_error_details();
                assert_eq!(
                    details.error_info().expect("ErrorInfo").reason,
                    identity::hashing::BUSY_REASON
                );
                let delay = details
                    .retry_info()
                    .and_then(|r| r.retry_delay)
                    .expect("RetryInfo with a delay");
                assert!(delay > Duration::ZERO, "{status:?}");
                let seconds: u64 = status
                    .metadata()
                    .get("retry-after")
                    .expect("retry-after")
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!(seconds >= 1);
                refused += 1;
            }
        }
    }
    assert!(served >= 1, "nothing was served within the deadline");
    assert!(
        refused >= 1,
        "sixteen hashes one at a time cannot all fit in {deadline:?}"
    );
}

#[tokio::test]
async fn logins_waiting_for_a_hash_hold_no_database_connection() {
    // One connection and one hash at a time, and no queueing limit but the deadline: logins
    // queued for the hash must leave the connection to everyone else.
    let id = identity_with_one_permit(&[
        ("MERCATO_DB_POOL_SIZE", "1"),
        ("MERCATO_IDENTITY_HASH_MAX_WAIT_MS", "600000"),
    ])
    .await;
    let (email, password) = register(&id).await;
    let token = login_within(&id, &email, &password, None)
        .await
        .unwrap()
        .access_token;

    let answered = Arc::new(AtomicUsize::new(0));
    let burst = tokio::spawn({
        let (email, password) = (email.clone(), password.clone());
        let client = id.client().await;
        let answered = answered.clone();
        async move {
            futures::future::join_all((0..8).map(|_| {
                let mut client = client.clone();
                let answered = answered.clone();
                let request = IssueTokenRequest {
                    grant: Some(issue_token_request::Grant::Password(PasswordGrant {
                        email: email.clone(),
                        password: password.clone(),
                    })),
                };
                async move {
                    let outcome = client.issue_token(request).await;
                    answered.fetch_add(1, Ordering::SeqCst);
                    outcome
                }
            }))
            .await
        }
    });
    // Let the logins reach identity; eight hashes in a row take far longer than this.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let me = id
        .client()
        .await
        .get_me(authed(GetMeRequest {}, &token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(me.user.unwrap().email, email);
    // Holding the connection while hashing, the queued logins would take it one after the
    // other and GetMe would come last.
    let before_me = answered.load(Ordering::SeqCst);
    assert!(
        before_me < 4,
        "GetMe waited for {before_me} of 8 logins: they held the only connection"
    );
    for outcome in burst.await.unwrap() {
        outcome.unwrap();
    }
}
