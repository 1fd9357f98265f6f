//! Writing, reading, summarising and deleting reviews.

use mercato::pb::review::v1::{CreateReviewRequest, DeleteReviewRequest, GetRatingSummaryRequest};
use tonic::Code;

use crate::{
    TestReview, assert_code, confirmed, eventually, new_id, publish, reason, review_of,
    violated_fields,
};

#[tokio::test]
async fn a_customer_without_a_confirmed_order_cannot_review() {
    let svc = TestReview::start().await;
    let (user_id, token) = svc.customer().await;
    let product = new_id();
    // Someone else bought it; the settle marker proves the order stream has been applied.
    let (other_id, _) = svc.customer().await;
    publish(
        svc.namespace(),
        &confirmed(&new_id(), &other_id, &[&product]),
    )
    .await;
    svc.settle(&user_id, &token).await;

    let status = assert_code(
        svc.create(&token, review_of(&product, 5)).await,
        Code::PermissionDenied,
    );
    assert_eq!(reason(&status), "NOT_A_VERIFIED_BUYER");
    assert_eq!(svc.summary(&product).await.review_count, 0);
}

#[tokio::test]
async fn a_buyer_reviews_once_and_a_second_review_already_exists() {
    let svc = TestReview::start().await;
    let (user_id, token) = svc.customer().await;
    let product = new_id();
    publish(
        svc.namespace(),
        &confirmed(&new_id(), &user_id, &[&product]),
    )
    .await;

    let review = svc
        .create_when_eligible(
            &token,
            CreateReviewRequest {
                product_id: product.clone(),
                rating: 4,
                title: "  Sturdy and warm  ".into(),
                body: "Survived the dishwasher.\nTwice.".into(),
            },
        )
        .await;
    assert_eq!(review.product_id, product);
    assert_eq!(review.user_id, user_id);
    assert_eq!(review.rating, 4);
    assert_eq!(review.title, "Sturdy and warm");
    assert_eq!(review.body, "Survived the dishwasher.\nTwice.");
    assert!(uuid::Uuid::parse_str(&review.id).is_ok());
    assert!(review.create_time.is_some());

    let status = assert_code(
        svc.create(&token, review_of(&product, 1)).await,
        Code::AlreadyExists,
    );
    assert_eq!(reason(&status), "ALREADY_REVIEWED");
    let (listed, _) = svc.list(&product, 0, "").await.unwrap();
    assert_eq!(listed, vec![review]);
}

#[tokio::test]
async fn a_review_carries_the_display_name_identity_announced() {
    let svc = TestReview::start().await;
    let (user_id, token) = svc.customer().await;
    let product = new_id();
    publish(
        svc.namespace(),
        &confirmed(&new_id(), &user_id, &[&product]),
    )
    .await;
    svc.create_when_eligible(&token, review_of(&product, 5))
        .await;

    // UserRegistered travels on identity's stream; a review written before it was applied
    // receives the name when it is.
    eventually("the author's name", || async {
        let (reviews, _) = svc.list(&product, 0, "").await.unwrap();
        (reviews[0].author_name == "Customer").then_some(())
    })
    .await;
}

#[tokio::test]
async fn concurrent_reviews_of_one_product_by_one_buyer_store_exactly_one() {
    let svc = TestReview::start().await;
    let (user_id, token) = svc.customer().await;
    let product = new_id();
    publish(
        svc.namespace(),
        &confirmed(&new_id(), &user_id, &[&product]),
    )
    .await;
    svc.settle(&user_id, &token).await;

    let attempts = (1..=8).map(|i| svc.create(&token, review_of(&product, (i % 5) + 1)));
    let results = futures::future::join_all(attempts).await;
    let created = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(created, 1, "{results:?}");
    for result in results.into_iter().filter(Result::is_err) {
        assert_code(result, Code::AlreadyExists);
    }
    assert_eq!(svc.summary(&product).await.review_count, 1);
}

#[tokio::test]
async fn invalid_reviews_report_every_bad_field() {
    let svc = TestReview::start().await;
    let (_, token) = svc.customer().await;
    let request = CreateReviewRequest {
        product_id: "not-a-uuid".into(),
        rating: 0,
        title: String::new(),
        body: "b".repeat(5001),
    };
    let status = assert_code(svc.create(&token, request).await, Code::InvalidArgument);
    assert_eq!(
        violated_fields(&status),
        vec!["product_id", "rating", "title", "body"]
    );

    let long_title = CreateReviewRequest {
        title: "t".repeat(121),
        ..review_of(&new_id(), 3)
    };
    let status = assert_code(svc.create(&token, long_title).await, Code::InvalidArgument);
    assert_eq!(violated_fields(&status), vec!["title"]);

    let status = assert_code(svc.list("nope", 101, "").await, Code::InvalidArgument);
    assert_eq!(violated_fields(&status), vec!["product_id", "page_size"]);
    let status = assert_code(
        svc.list(&new_id(), 0, "garbage!").await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), vec!["page_token"]);
    let status = assert_code(
        svc.client()
            .await
            .get_rating_summary(GetRatingSummaryRequest {
                product_id: String::new(),
            })
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), vec!["product_id"]);
}

#[tokio::test]
async fn writing_and_deleting_need_a_token_and_service_accounts_cannot_review() {
    let svc = TestReview::start().await;
    let mut client = svc.client().await;
    assert_code(
        client
            .create_review(tonic::Request::new(review_of(&new_id(), 5)))
            .await,
        Code::Unauthenticated,
    );
    assert_code(
        client
            .delete_review(tonic::Request::new(DeleteReviewRequest { id: new_id() }))
            .await,
        Code::Unauthenticated,
    );
    let service = svc.identity.service_token().await;
    let status = assert_code(
        svc.create(&service, review_of(&new_id(), 5)).await,
        Code::PermissionDenied,
    );
    assert_eq!(reason(&status), "NOT_A_VERIFIED_BUYER");
}

#[tokio::test]
async fn reviews_are_listed_newest_first_one_page_at_a_time() {
    let svc = TestReview::start().await;
    let product = new_id();
    let mut written = Vec::new();
    for rating in 1..=5 {
        let (user_id, token) = svc.customer().await;
        publish(
            svc.namespace(),
            &confirmed(&new_id(), &user_id, &[&product]),
        )
        .await;
        written.push(
            svc.create_when_eligible(&token, review_of(&product, rating))
                .await,
        );
    }
    let newest_first: Vec<String> = written.iter().rev().map(|r| r.id.clone()).collect();

    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let (page, next) = svc.list(&product, 2, &token).await.unwrap();
        assert!(page.len() <= 2);
        seen.extend(page.into_iter().map(|r| r.id));
        pages += 1;
        if next.is_empty() {
            break;
        }
        token = next;
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, newest_first);

    // A token belongs to the product it was issued for.
    let (_, next) = svc.list(&product, 2, "").await.unwrap();
    let status = assert_code(svc.list(&new_id(), 2, &next).await, Code::InvalidArgument);
    assert_eq!(violated_fields(&status), vec!["page_token"]);
    // Reading is public: no token was needed above. An unknown product has no reviews.
    let (empty, next) = svc.list(&new_id(), 0, "").await.unwrap();
    assert!(empty.is_empty() && next.is_empty());
}

#[tokio::test]
async fn the_summary_counts_every_rating_and_follows_deletes() {
    let svc = TestReview::start().await;
    let product = new_id();
    let empty = svc.summary(&product).await;
    assert_eq!(empty.product_id, product);
    assert_eq!(empty.review_count, 0);
    assert!(empty.average_rating.abs() < f64::EPSILON);
    assert_eq!(
        empty
            .histogram
            .iter()
            .map(|h| (h.rating, h.count))
            .collect::<Vec<_>>(),
        vec![(1, 0), (2, 0), (3, 0), (4, 0), (5, 0)]
    );

    let mut ids = Vec::new();
    for rating in [5, 5, 4, 1] {
        let (user_id, token) = svc.customer().await;
        publish(
            svc.namespace(),
            &confirmed(&new_id(), &user_id, &[&product]),
        )
        .await;
        ids.push(
            svc.create_when_eligible(&token, review_of(&product, rating))
                .await
                .id,
        );
    }
    let summary = svc.summary(&product).await;
    assert_eq!(summary.review_count, 4);
    assert!((summary.average_rating - 3.75).abs() < 1e-9);
    assert_eq!(
        summary
            .histogram
            .iter()
            .map(|h| h.count)
            .collect::<Vec<_>>(),
        vec![1, 0, 0, 1, 2]
    );

    // The one-star review goes (admin): the summary follows at once.
    svc.delete(&ids[3], &svc.admin).await.unwrap();
    let summary = svc.summary(&product).await;
    assert_eq!(summary.review_count, 3);
    assert!((summary.average_rating - 14.0 / 3.0).abs() < 1e-9);
    assert_eq!(
        summary
            .histogram
            .iter()
            .map(|h| h.count)
            .collect::<Vec<_>>(),
        vec![0, 0, 0, 1, 2]
    );
}

#[tokio::test]
async fn a_review_is_deleted_by_its_author_or_an_admin_and_nobody_else() {
    let svc = TestReview::start().await;
    let (author_id, author) = svc.customer().await;
    let (_, stranger) = svc.customer().await;
    let (first, second) = (new_id(), new_id());
    publish(
        svc.namespace(),
        &confirmed(&new_id(), &author_id, &[&first, &second]),
    )
    .await;
    let mine = svc
        .create_when_eligible(&author, review_of(&first, 2))
        .await;
    let other = svc.create(&author, review_of(&second, 3)).await.unwrap();

    let status = assert_code(
        svc.delete(&mine.id, &stranger).await,
        Code::PermissionDenied,
    );
    assert_eq!(reason(&status), "NOT_THE_AUTHOR");
    assert_eq!(svc.summary(&first).await.review_count, 1);

    svc.delete(&mine.id, &author).await.unwrap();
    assert_eq!(svc.summary(&first).await.review_count, 0);
    assert_code(svc.delete(&mine.id, &author).await, Code::NotFound);

    svc.delete(&other.id, &svc.admin).await.unwrap();
    assert!(svc.list(&second, 0, "").await.unwrap().0.is_empty());

    assert_code(svc.delete(&new_id(), &svc.admin).await, Code::NotFound);
    let status = assert_code(svc.delete("42", &author).await, Code::InvalidArgument);
    assert_eq!(violated_fields(&status), vec!["id"]);

    // Deleting frees the slot: the buyer may review the product again.
    svc.create(&author, review_of(&first, 4)).await.unwrap();
}
