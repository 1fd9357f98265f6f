use mercato::pb::catalog::v1::{
    BatchGetProductsRequest, CreateProductRequest, DeleteProductRequest, GetProductRequest,
    ListCategoriesRequest, ListProductsRequest, Product, UpdateProductRequest,
};
use mercato::pb::identity::v1::{
    ClientCredentialsGrant, CreateClientRequest, IssueTokenRequest, issue_token_request::Grant,
};
use mercato_testkit::authed;
use tonic::Code;
use tonic_types::StatusExt as _;

use crate::{TestCatalog, assert_code, eur, product, violated_fields};

#[tokio::test]
async fn an_admin_creates_and_anyone_reads_a_product() {
    let catalog = TestCatalog::start().await;
    let kitchen = catalog.category("Kitchen").await;
    let created = catalog.product("MUG-1", "Mug", 1250, &kitchen.id).await;
    assert_eq!(created.price, Some(eur(1250)));
    let fetched = catalog
        .client()
        .await
        .get_product(GetProductRequest {
            id: created.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fetched.product.unwrap().name, "Mug");
    let categories = catalog
        .client()
        .await
        .list_categories(ListCategoriesRequest {})
        .await
        .unwrap()
        .into_inner()
        .categories;
    assert_eq!(
        categories
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>(),
        vec!["Kitchen"]
    );
}

#[tokio::test]
async fn listing_pages_through_every_product_in_name_order() {
    let catalog = TestCatalog::start().await;
    for (i, name) in ["Echo", "Alpha", "Delta", "Bravo", "Charlie"]
        .iter()
        .enumerate()
    {
        catalog
            .product(
                &format!("SKU-{i}"),
                name,
                100 + i64::try_from(i).unwrap(),
                "",
            )
            .await;
    }
    let mut names = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = catalog
            .client()
            .await
            .list_products(ListProductsRequest {
                page_size: 2,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        names.extend(page.products.into_iter().map(|p| p.name));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(pages, 3);
    assert_eq!(names, vec!["Alpha", "Bravo", "Charlie", "Delta", "Echo"]);
}

#[tokio::test]
async fn listing_filters_by_name_and_category() {
    let catalog = TestCatalog::start().await;
    let books = catalog.category("Books").await;
    catalog
        .product("B-1", "Rust in Action", 3000, &books.id)
        .await;
    catalog
        .product("B-2", "Postgres 100% explained", 3000, &books.id)
        .await;
    catalog.product("M-1", "Rusty mug", 900, "").await;
    let list = |query: &str, category: &str| ListProductsRequest {
        query: query.into(),
        category_id: category.into(),
        ..Default::default()
    };
    let names = |products: Vec<Product>| products.into_iter().map(|p| p.name).collect::<Vec<_>>();
    let found = catalog
        .client()
        .await
        .list_products(list("rust", ""))
        .await
        .unwrap()
        .into_inner()
        .products;
    assert_eq!(names(found), vec!["Rust in Action", "Rusty mug"]);
    let found = catalog
        .client()
        .await
        .list_products(list("rust", &books.id))
        .await
        .unwrap()
        .into_inner()
        .products;
    assert_eq!(names(found), vec!["Rust in Action"]);
    // LIKE wildcards in the query match literally.
    let found = catalog
        .client()
        .await
        .list_products(list("100%", ""))
        .await
        .unwrap()
        .into_inner()
        .products;
    assert_eq!(names(found), vec!["Postgres 100% explained"]);
    let found = catalog
        .client()
        .await
        .list_products(list("%", ""))
        .await
        .unwrap()
        .into_inner()
        .products;
    assert_eq!(names(found), vec!["Postgres 100% explained"]);
}

#[tokio::test]
async fn bad_product_input_is_rejected_with_field_violations() {
    let catalog = TestCatalog::start().await;
    let mut client = catalog.client().await;
    let create = |p: Product| authed(CreateProductRequest { product: Some(p) }, &catalog.admin);
    let cases: Vec<(Product, Vec<&str>)> = vec![
        (product("MUG-1", "Mug", -100, ""), vec!["product.price"]),
        (product("MUG-1", "Mug", 0, ""), vec!["product.price"]),
        (
            product("", "", 100, ""),
            vec!["product.sku", "product.name"],
        ),
        (
            product("bad sku", &"x".repeat(201), 100, "not-a-uuid"),
            vec!["product.sku", "product.name", "product.category_id"],
        ),
        (
            Product {
                price: None,
                ..product("MUG-1", "Mug", 100, "")
            },
            vec!["product.price"],
        ),
        (
            product("MUG-1", "Mug", 100, &uuid::Uuid::now_v7().to_string()),
            vec!["product.category_id"],
        ),
    ];
    for (p, fields) in cases {
        let status = assert_code(
            client.create_product(create(p)).await,
            Code::InvalidArgument,
        );
        assert_eq!(violated_fields(&status), fields);
    }
    assert_code(
        client
            .create_product(authed(
                CreateProductRequest { product: None },
                &catalog.admin,
            ))
            .await,
        Code::InvalidArgument,
    );
    catalog.product("MUG-1", "Mug", 100, "").await;
    assert_code(
        client
            .create_product(create(product("MUG-1", "Other mug", 100, "")))
            .await,
        Code::AlreadyExists,
    );
}

#[tokio::test]
async fn bad_read_input_is_rejected() {
    let catalog = TestCatalog::start().await;
    let mut client = catalog.client().await;
    assert_code(
        client
            .get_product(GetProductRequest { id: "nope".into() })
            .await,
        Code::InvalidArgument,
    );
    assert_code(
        client
            .get_product(GetProductRequest { id: String::new() })
            .await,
        Code::InvalidArgument,
    );
    assert_code(
        client
            .get_product(GetProductRequest {
                id: uuid::Uuid::now_v7().to_string(),
            })
            .await,
        Code::NotFound,
    );
    for request in [
        ListProductsRequest {
            page_size: 101,
            ..Default::default()
        },
        ListProductsRequest {
            page_size: -1,
            ..Default::default()
        },
        ListProductsRequest {
            page_token: "garbage!".into(),
            ..Default::default()
        },
        ListProductsRequest {
            query: "q".repeat(101),
            ..Default::default()
        },
        ListProductsRequest {
            category_id: "not-a-uuid".into(),
            ..Default::default()
        },
    ] {
        assert_code(client.list_products(request).await, Code::InvalidArgument);
    }
    // A token issued for one filter is not valid for another.
    for i in 0..3 {
        catalog.product(&format!("S-{i}"), "Same", 100, "").await;
    }
    let page = client
        .list_products(ListProductsRequest {
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let other = ListProductsRequest {
        page_size: 1,
        page_token: page.next_page_token,
        query: "x".into(),
        ..Default::default()
    };
    assert_code(client.list_products(other).await, Code::InvalidArgument);
}

#[tokio::test]
async fn writes_need_the_admin_role() {
    let catalog = TestCatalog::start().await;
    let (_, customer) = catalog.identity.customer().await;
    let mut client = catalog.client().await;
    let request = || CreateProductRequest {
        product: Some(product("X-1", "X", 100, "")),
    };
    assert_code(
        client.create_product(request()).await,
        Code::Unauthenticated,
    );
    assert_code(
        client.create_product(authed(request(), &customer)).await,
        Code::PermissionDenied,
    );
    assert_code(
        client
            .create_product(authed(request(), "forged.token.value"))
            .await,
        Code::Unauthenticated,
    );
    let id = catalog.product("X-1", "X", 100, "").await.id;
    assert_code(
        client
            .delete_product(authed(DeleteProductRequest { id: id.clone() }, &customer))
            .await,
        Code::PermissionDenied,
    );
    client
        .delete_product(authed(
            DeleteProductRequest { id: id.clone() },
            &catalog.admin,
        ))
        .await
        .unwrap();
    assert_code(
        client
            .get_product(GetProductRequest { id: id.clone() })
            .await,
        Code::NotFound,
    );
    assert_code(
        client
            .delete_product(authed(DeleteProductRequest { id }, &catalog.admin))
            .await,
        Code::NotFound,
    );
}

#[tokio::test]
async fn batch_get_is_for_service_accounts_only() {
    let catalog = TestCatalog::start().await;
    let a = catalog.product("A-1", "A", 100, "").await;
    let missing = uuid::Uuid::now_v7().to_string();
    let request = || BatchGetProductsRequest {
        ids: vec![a.id.clone(), missing.clone()],
    };
    let (_, customer) = catalog.identity.customer().await;
    let mut client = catalog.client().await;
    assert_code(
        client
            .batch_get_products(authed(request(), &customer))
            .await,
        Code::PermissionDenied,
    );
    assert_code(
        client
            .batch_get_products(authed(request(), &catalog.admin))
            .await,
        Code::PermissionDenied,
    );

    let mut identity = catalog.identity.client().await;
    let created = identity
        .create_client(authed(
            CreateClientRequest {
                name: "basket".into(),
            },
            &catalog.admin,
        ))
        .await
        .unwrap()
        .into_inner();
    let grant = Grant::ClientCredentials(ClientCredentialsGrant {
        client_id: created.client.unwrap().id,
        client_secret: created.client_secret,
    });
    let service = identity
        .issue_token(IssueTokenRequest { grant: Some(grant) })
        .await
        .unwrap()
        .into_inner()
        .access_token;
    let found = client
        .batch_get_products(authed(request(), &service))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        found
            .products
            .iter()
            .map(|p| p.id.as_str())
            .collect::<Vec<_>>(),
        vec![a.id.as_str()]
    );
    assert_eq!(found.missing_ids, vec![missing]);
    let too_many = BatchGetProductsRequest {
        ids: vec!["x".into(); 101],
    };
    assert_code(
        client.batch_get_products(authed(too_many, &service)).await,
        Code::InvalidArgument,
    );
}

#[tokio::test]
async fn an_update_changes_only_the_masked_fields() {
    let catalog = TestCatalog::start().await;
    let created = catalog.product("U-1", "Old name", 1000, "").await;
    let patch = Product {
        id: created.id.clone(),
        name: "New name".into(),
        price: Some(eur(1)),
        ..Default::default()
    };
    let request = UpdateProductRequest {
        product: Some(patch.clone()),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["name".into()],
        }),
    };
    let updated = catalog
        .client()
        .await
        .update_product(authed(request, &catalog.admin))
        .await
        .unwrap()
        .into_inner()
        .product
        .unwrap();
    assert_eq!(updated.name, "New name");
    assert_eq!(updated.price, Some(eur(1000)), "price was not in the mask");
    let bad_mask = UpdateProductRequest {
        product: Some(patch.clone()),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["id".into()],
        }),
    };
    assert_code(
        catalog
            .client()
            .await
            .update_product(authed(bad_mask, &catalog.admin))
            .await,
        Code::InvalidArgument,
    );
    let unknown = UpdateProductRequest {
        product: Some(Product {
            id: uuid::Uuid::now_v7().to_string(),
            ..patch
        }),
        update_mask: None,
    };
    assert_code(
        catalog
            .client()
            .await
            .update_product(authed(unknown, &catalog.admin))
            .await,
        Code::NotFound,
    );
}

#[tokio::test]
async fn a_refused_token_gets_a_fixed_message_and_a_reason_not_the_parsers_words() {
    let catalog = TestCatalog::start().await;
    let mut client = catalog.client().await;
    // The admin's real token with its signature's last characters changed.
    let mut resigned = catalog.admin.clone();
    let tail = if resigned.ends_with('A') { "BB" } else { "AA" };
    resigned.replace_range(resigned.len() - 2.., tail);
    let header_only = format!("{}.e30.", catalog.admin.split('.').next().unwrap());
    for token in ["forged.token.value", "garbage", &resigned, &header_only] {
        let request = CreateProductRequest {
            product: Some(product("X-1", "X", 100, "")),
        };
        let status = assert_code(
            client.create_product(authed(request, token)).await,
            Code::Unauthenticated,
        );
        assert_eq!(status.message(), "the access token is not valid", "{token}");
        assert_eq!(
            status.get_error_details().error_info().unwrap().reason,
            "INVALID_TOKEN"
        );
    }
}
