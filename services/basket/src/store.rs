//! Baskets in Redis: one HASH per user at `<prefix>basket:<user_id>`, forgotten after the
//! configured TTL without changes.
//!
//! Fields of the hash:
//!
//! | field         | value                                                          |
//! |---------------|----------------------------------------------------------------|
//! | `q:<product>` | units of the product                                           |
//! | `o:<product>` | sequence number of its first addition (keeps the line order)   |
//! | `s`           | the last sequence number handed out                            |
//! | `c`           | upper-case coupon code, absent when none                       |
//! | `v`           | version: incremented by every change                           |
//! | `u`, `e`      | last change and expiry, Unix milliseconds                      |
//!
//! Every read-modify-write runs as one Lua script, so concurrent requests of one user never
//! lose an update (two AddItem of the same product add both quantities) and the limits hold.
//! Emptying a basket keeps its hash (and its version) rather than deleting it: a version can
//! then never repeat while a checkout that read it is still running.
//!
//! Checkouts are remembered at `<prefix>checkout:<user_id>:<idempotency_key>` (items and
//! coupon as sent to the order service, and the basket version they were taken from), so a
//! repeated Checkout sends the order service the very same order even after the basket was
//! emptied or changed.

mod scripts;

use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_redis::redis::{self, FromRedisValue};
use mercato::pb::order::v1::{OrderItem, PlaceOrderRequest};
use mercato_kernel::redis::RedisPool;
use prost::Message as _;

use crate::domain::{AddRefusal, Contents, Line, MAX_LINES, MAX_QUANTITY, ProductId};

use self::scripts::{ADD, CLEAR, EMPTY_IF_VERSION, RECORD_CHECKOUT, REMOVE, SET_COUPON, UPDATE};

/// Longest wait for a Redis answer before the basket is declared unavailable. Redis is the
/// basket's only store, so this is more patient than the kernel's cache timeout.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(1);

/// Redis could not serve a basket operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No connection could be had.
    #[error("no connection: {0}")]
    Pool(#[from] deadpool_redis::PoolError),
    /// A command failed.
    #[error(transparent)]
    Command(#[from] redis::RedisError),
    /// Redis did not answer in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// A stored value is not what this service writes (a defect, or a foreign writer).
    #[error("stored basket is malformed: {0}")]
    Malformed(String),
}

/// What AddItem did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddOutcome {
    /// The units were added; the basket after the change.
    Added(Contents),
    /// Nothing changed: a limit would be broken.
    Refused(AddRefusal),
}

/// What UpdateItem did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateOutcome {
    /// The quantity was set (or the line removed); the basket after the change.
    Updated(Contents),
    /// The product is not in the basket; nothing changed.
    NotInBasket,
}

/// A checkout as first sent to the order service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutRecord {
    /// The items, in basket order.
    pub items: Vec<OrderItem>,
    /// The coupon, upper case, or empty.
    pub coupon_code: String,
    /// The basket version the items were taken from.
    pub version: u64,
}

/// The basket store.
#[derive(Clone)]
pub struct BasketStore {
    pool: RedisPool,
    prefix: String,
    ttl: Duration,
}

impl BasketStore {
    /// Baskets under `prefix`, forgotten `ttl` after their last change.
    pub fn new(pool: RedisPool, prefix: &str, ttl: Duration) -> Self {
        Self {
            pool,
            prefix: prefix.to_owned(),
            ttl,
        }
    }

    /// The Redis key of a user's basket.
    pub fn basket_key(&self, user_id: &str) -> String {
        format!("{}basket:{user_id}", self.prefix)
    }

    fn checkout_key(&self, user_id: &str, idempotency_key: &str) -> String {
        format!("{}checkout:{user_id}:{idempotency_key}", self.prefix)
    }

    fn ttl_millis(&self) -> i64 {
        i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX)
    }

    async fn query<T: FromRedisValue>(&self, cmd: redis::Cmd) -> Result<T, StoreError> {
        let run = async {
            let mut conn = self.pool.get().await?;
            Ok(cmd.query_async::<T>(&mut conn).await?)
        };
        tokio::time::timeout(COMMAND_TIMEOUT, run)
            .await
            .map_err(|_| StoreError::Timeout(COMMAND_TIMEOUT))?
    }

    /// Runs a basket write script with the time arguments it expects.
    async fn write(
        &self,
        script: &str,
        user_id: &str,
        args: &[&str],
    ) -> Result<(String, String, Contents), StoreError> {
        let now = Utc::now().timestamp_millis();
        let expire_at = now.saturating_add(self.ttl_millis());
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(script)
            .arg(1)
            .arg(self.basket_key(user_id))
            .arg(now)
            .arg(expire_at);
        for arg in args {
            cmd.arg(*arg);
        }
        let mut reply: Vec<String> = self.query(cmd).await?;
        if reply.len() < 2 {
            return Err(StoreError::Malformed("script reply too short".into()));
        }
        let fields = reply.split_off(2);
        let detail = reply.pop().unwrap_or_default();
        let status = reply.pop().unwrap_or_default();
        Ok((status, detail, contents_from_fields(&fields)?))
    }

    /// The user's basket (empty and unversioned when never used or forgotten).
    pub async fn load(&self, user_id: &str) -> Result<Contents, StoreError> {
        let mut cmd = redis::cmd("HGETALL");
        cmd.arg(self.basket_key(user_id));
        let fields: Vec<String> = self.query(cmd).await?;
        contents_from_fields(&fields)
    }

    /// Adds units of a product, within the limits.
    pub async fn add(
        &self,
        user_id: &str,
        product_id: &ProductId,
        quantity: u32,
    ) -> Result<AddOutcome, StoreError> {
        let (quantity, max_quantity, max_lines) = (
            quantity.to_string(),
            MAX_QUANTITY.to_string(),
            MAX_LINES.to_string(),
        );
        let args = [
            product_id.as_str(),
            quantity.as_str(),
            max_quantity.as_str(),
            max_lines.as_str(),
        ];
        let (status, detail, contents) = self.write(ADD, user_id, &args).await?;
        match status.as_str() {
            "ok" => Ok(AddOutcome::Added(contents)),
            "too_many" => {
                let current = detail
                    .parse()
                    .map_err(|_| StoreError::Malformed(format!("quantity {detail:?}")))?;
                Ok(AddOutcome::Refused(AddRefusal::TooMany { current }))
            }
            "full" => Ok(AddOutcome::Refused(AddRefusal::Full)),
            other => Err(StoreError::Malformed(format!("add answered {other:?}"))),
        }
    }

    /// Sets a line's quantity; 0 removes it.
    pub async fn set_quantity(
        &self,
        user_id: &str,
        product_id: &ProductId,
        quantity: u32,
    ) -> Result<UpdateOutcome, StoreError> {
        let quantity = quantity.to_string();
        let (status, _, contents) = self
            .write(UPDATE, user_id, &[product_id.as_str(), quantity.as_str()])
            .await?;
        match status.as_str() {
            "ok" => Ok(UpdateOutcome::Updated(contents)),
            "missing" => Ok(UpdateOutcome::NotInBasket),
            other => Err(StoreError::Malformed(format!("update answered {other:?}"))),
        }
    }

    /// Removes a line if present.
    pub async fn remove(
        &self,
        user_id: &str,
        product_id: &ProductId,
    ) -> Result<Contents, StoreError> {
        let (_, _, contents) = self.write(REMOVE, user_id, &[product_id.as_str()]).await?;
        Ok(contents)
    }

    /// Removes every line and the coupon.
    pub async fn clear(&self, user_id: &str) -> Result<Contents, StoreError> {
        let (_, _, contents) = self.write(CLEAR, user_id, &[]).await?;
        Ok(contents)
    }

    /// Sets the coupon (`None` removes it).
    pub async fn set_coupon(
        &self,
        user_id: &str,
        code: Option<&str>,
    ) -> Result<Contents, StoreError> {
        let (_, _, contents) = self
            .write(SET_COUPON, user_id, &[code.unwrap_or("")])
            .await?;
        Ok(contents)
    }

    /// Empties the basket if it is still at `version`; true when it did.
    pub async fn empty_if_unchanged(
        &self,
        user_id: &str,
        version: u64,
    ) -> Result<bool, StoreError> {
        let version = version.to_string();
        let (status, _, _) = self
            .write(EMPTY_IF_VERSION, user_id, &[version.as_str()])
            .await?;
        Ok(status == "ok")
    }

    /// Drops lines of products the catalog no longer has. Not a change by the user: the
    /// version, update time and expiry stay as they are.
    pub async fn prune(&self, user_id: &str, gone: &[ProductId]) -> Result<(), StoreError> {
        if gone.is_empty() {
            return Ok(());
        }
        let mut cmd = redis::cmd("HDEL");
        cmd.arg(self.basket_key(user_id));
        for id in gone {
            cmd.arg(format!("q:{id}")).arg(format!("o:{id}"));
        }
        self.query::<i64>(cmd).await.map(|_| ())
    }

    /// The checkout recorded under `idempotency_key`, if any.
    pub async fn checkout_record(
        &self,
        user_id: &str,
        idempotency_key: &str,
    ) -> Result<Option<CheckoutRecord>, StoreError> {
        let mut cmd = redis::cmd("HMGET");
        cmd.arg(self.checkout_key(user_id, idempotency_key))
            .arg("items")
            .arg("version");
        let reply: Vec<Option<Vec<u8>>> = self.query(cmd).await?;
        match reply.as_slice() {
            [Some(items), Some(version)] => record_from_parts(items, version).map(Some),
            _ => Ok(None),
        }
    }

    /// Records `record` under `idempotency_key` unless a checkout with that key was recorded
    /// first; answers the record that holds.
    pub async fn record_checkout(
        &self,
        user_id: &str,
        idempotency_key: &str,
        record: &CheckoutRecord,
    ) -> Result<CheckoutRecord, StoreError> {
        let items = PlaceOrderRequest {
            items: record.items.clone(),
            coupon_code: record.coupon_code.clone(),
            ..PlaceOrderRequest::default()
        }
        .encode_to_vec();
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(RECORD_CHECKOUT)
            .arg(1)
            .arg(self.checkout_key(user_id, idempotency_key))
            .arg(items)
            .arg(record.version)
            .arg(self.ttl_millis());
        let reply: Vec<Vec<u8>> = self.query(cmd).await?;
        match reply.as_slice() {
            [items, version] => record_from_parts(items, version),
            _ => Err(StoreError::Malformed("checkout record reply".into())),
        }
    }

    /// Forgets a checkout that placed no order, so the key can be used again.
    pub async fn forget_checkout(
        &self,
        user_id: &str,
        idempotency_key: &str,
    ) -> Result<(), StoreError> {
        let mut cmd = redis::cmd("DEL");
        cmd.arg(self.checkout_key(user_id, idempotency_key));
        self.query::<i64>(cmd).await.map(|_| ())
    }
}

fn record_from_parts(items: &[u8], version: &[u8]) -> Result<CheckoutRecord, StoreError> {
    let request = PlaceOrderRequest::decode(items)
        .map_err(|e| StoreError::Malformed(format!("checkout items: {e}")))?;
    let version = std::str::from_utf8(version)
        .ok()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| StoreError::Malformed("checkout version".into()))?;
    Ok(CheckoutRecord {
        items: request.items,
        coupon_code: request.coupon_code,
        version,
    })
}

fn millis(field: &str, value: &str) -> Result<DateTime<Utc>, StoreError> {
    value
        .parse()
        .ok()
        .and_then(DateTime::from_timestamp_millis)
        .ok_or_else(|| StoreError::Malformed(format!("{field} = {value:?}")))
}

fn number<T: std::str::FromStr>(field: &str, value: &str) -> Result<T, StoreError> {
    value
        .parse()
        .map_err(|_| StoreError::Malformed(format!("{field} = {value:?}")))
}

/// A basket from the flat field/value list of HGETALL.
pub fn contents_from_fields(fields: &[String]) -> Result<Contents, StoreError> {
    if !fields.len().is_multiple_of(2) {
        return Err(StoreError::Malformed("odd field list".into()));
    }
    let mut contents = Contents::default();
    // (sequence, line): sorted by first addition below.
    let mut lines: Vec<(u64, Line)> = Vec::new();
    let mut order: Vec<(ProductId, u64)> = Vec::new();
    for pair in fields.chunks_exact(2) {
        let (field, value) = (pair[0].as_str(), pair[1].as_str());
        if let Some(raw) = field.strip_prefix("q:") {
            let product_id = ProductId::parse(raw)
                .ok_or_else(|| StoreError::Malformed(format!("field {field:?}")))?;
            let quantity: u32 = number(field, value)?;
            if !(1..=MAX_QUANTITY).contains(&quantity) {
                return Err(StoreError::Malformed(format!("{field} = {value:?}")));
            }
            lines.push((
                u64::MAX,
                Line {
                    product_id,
                    quantity,
                },
            ));
        } else if let Some(raw) = field.strip_prefix("o:") {
            let product_id = ProductId::parse(raw)
                .ok_or_else(|| StoreError::Malformed(format!("field {field:?}")))?;
            order.push((product_id, number(field, value)?));
        } else {
            match field {
                "c" => contents.coupon_code = Some(value.to_owned()).filter(|c| !c.is_empty()),
                "v" => contents.version = number(field, value)?,
                "u" => contents.update_time = Some(millis(field, value)?),
                "e" => contents.expire_time = Some(millis(field, value)?),
                // `s` is only read by the scripts; unknown fields are left for newer versions.
                _ => {}
            }
        }
    }
    for (sequence, line) in &mut lines {
        if let Some((_, seq)) = order.iter().find(|(id, _)| *id == line.product_id) {
            *sequence = *seq;
        }
    }
    lines.sort_by(|(a, x), (b, y)| a.cmp(b).then_with(|| x.product_id.cmp(&y.product_id)));
    contents.lines = lines.into_iter().map(|(_, line)| line).collect();
    Ok(contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "0190a5a4-7b3e-7cc1-9d4e-000000000001";
    const B: &str = "0190a5a4-7b3e-7cc1-9d4e-000000000002";

    fn fields(pairs: &[(&str, &str)]) -> Vec<String> {
        pairs
            .iter()
            .flat_map(|(f, v)| [(*f).to_owned(), (*v).to_owned()])
            .collect()
    }

    #[test]
    fn a_basket_never_used_is_empty_and_unversioned() {
        let contents = contents_from_fields(&[]).unwrap();
        assert_eq!(contents, Contents::default());
        assert!(contents.update_time.is_none());
    }

    #[test]
    fn lines_come_back_in_the_order_they_were_first_added() {
        let b_upper = format!("q:{}", B.to_ascii_uppercase());
        let contents = contents_from_fields(&fields(&[
            ("v", "7"),
            ("s", "2"),
            (&format!("q:{A}"), "3"),
            (&b_upper, "1"),
            (&format!("o:{A}"), "2"),
            (&format!("o:{B}"), "1"),
            ("c", "SPRING-25"),
            ("u", "1700000000000"),
            ("e", "1700604800000"),
        ]))
        .unwrap();
        let ids: Vec<_> = contents
            .lines
            .iter()
            .map(|l| l.product_id.as_str())
            .collect();
        assert_eq!(ids, [B, A]);
        assert_eq!(contents.lines[1].quantity, 3);
        assert_eq!(contents.coupon_code.as_deref(), Some("SPRING-25"));
        assert_eq!(contents.version, 7);
        assert_eq!(
            contents.expire_time.unwrap().timestamp_millis()
                - contents.update_time.unwrap().timestamp_millis(),
            604_800_000
        );
    }

    #[test]
    fn malformed_values_are_reported_not_guessed() {
        for bad in [
            fields(&[(&format!("q:{A}"), "lots")]),
            fields(&[(&format!("q:{A}"), "0")]),
            fields(&[(&format!("q:{A}"), "100")]),
            fields(&[("q:lamp", "1")]),
            fields(&[("v", "-1")]),
            fields(&[("u", "yesterday")]),
            vec!["v".to_owned()],
        ] {
            assert!(contents_from_fields(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn checkout_records_round_trip() {
        let items = PlaceOrderRequest {
            items: vec![OrderItem {
                product_id: A.into(),
                quantity: 2,
            }],
            coupon_code: "TENOFF".into(),
            ..PlaceOrderRequest::default()
        }
        .encode_to_vec();
        let record = record_from_parts(&items, b"12").unwrap();
        assert_eq!(record.items.len(), 1);
        assert_eq!(record.coupon_code, "TENOFF");
        assert_eq!(record.version, 12);
        assert!(record_from_parts(&items, b"x").is_err());
    }
}
