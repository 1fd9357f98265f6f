//! Browse: the categories, one category's listing, a search for a word of a product name,
//! then one to three product pages (product, reviews, rating, stock). Buys nothing.

use rand::Rng as _;
use rand::seq::IndexedRandom as _;

use super::{Context, product_page};
use crate::session::Session;
use crate::shop::{Bearer, Call, Product, ProductQuery, Shop};
use crate::step::Step;

pub(super) async fn run<S: Shop>(
    ctx: &Context<S>,
    session: &mut Session<'_, S>,
    auth: &Bearer,
) -> Call<()> {
    let shop = session.shop;
    let categories = session
        .step(Step::Categories, shop.list_categories(auth))
        .await?;
    let mut seen: Vec<Product> = Vec::new();
    if let Some(category) = categories.choose(&mut session.rng) {
        let query = ProductQuery {
            category_id: category,
            page_size: 20,
            ..ProductQuery::default()
        };
        let page = session
            .step(Step::ListProducts, shop.list_products(auth, query))
            .await?;
        seen.extend(page.products);
    }
    if let Some(word) = ctx.catalog.words.choose(&mut session.rng) {
        let query = ProductQuery {
            query: word,
            page_size: 20,
            ..ProductQuery::default()
        };
        let page = session
            .step(Step::Search, shop.list_products(auth, query))
            .await?;
        seen.extend(page.products);
    }
    let pages = session.rng.random_range(1..=3);
    let picked: Vec<&Product> = if seen.is_empty() {
        ctx.catalog
            .products
            .choose_multiple(&mut session.rng, pages)
            .collect()
    } else {
        seen.choose_multiple(&mut session.rng, pages).collect()
    };
    for product in picked {
        product_page(session, auth, &product.id).await?;
    }
    Ok(())
}
