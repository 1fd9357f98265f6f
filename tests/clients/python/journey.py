#!/usr/bin/env python3
"""A customer's journey through the edge gateway with the Python client generated from
proto/ (tests/clients/python/generate), over plain gRPC (HTTP/2 cleartext) on the gateway's
one public port:

  register, log in (token), list products, get a product and its stock, place an order
  (OrderService/PlaceOrder, test card 4242424242424242), and, when basket is running, the
  basket flow: AddItem, GetBasket, Checkout. Plus the gate: a token is required where the
  contract says so, service-only RPCs do not exist from outside, and errors carry their
  google.rpc details.

  PYTHONPATH=<generated dir> python journey.py [--target localhost:8080] [--product-id ID]
                                               [--basket auto|yes|no] [--run-id ID]

Without --product-id it takes the first listed product with at least 2 units available.
Exits non-zero on the first failed step. Part of `make test` (scripts/grpcurl-smoke).
"""

import argparse
import sys
import uuid

import grpc
from google.rpc import error_details_pb2, status_pb2

from mercato.basket.v1 import basket_pb2, basket_pb2_grpc
from mercato.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from mercato.identity.v1 import identity_pb2, identity_pb2_grpc
from mercato.inventory.v1 import inventory_pb2, inventory_pb2_grpc
from mercato.order.v1 import order_pb2, order_pb2_grpc
from mercato.payment.v1 import payment_pb2

TIMEOUT = 10  # seconds, per call (sent as grpc-timeout)
GOOD_CARD = "4242424242424242"


def say(text):
    print(f"client: {text}", flush=True)


def fail(step, text):
    print(f"client: FAIL: {step}: {text}", file=sys.stderr, flush=True)
    sys.exit(1)


def call(step, method, request, token=None):
    """One unary call that must succeed; returns its response."""
    metadata = [("authorization", f"Bearer {token}")] if token else []
    try:
        response = method(request, timeout=TIMEOUT, metadata=metadata)
    except grpc.RpcError as err:
        fail(step, f"{err.code().name}: {err.details()}")
    say(f"ok  {step}")
    return response


def refused(step, want, method, request, token=None):
    """One unary call that must fail with the status code `want`; returns the error."""
    metadata = [("authorization", f"Bearer {token}")] if token else []
    try:
        method(request, timeout=TIMEOUT, metadata=metadata)
    except grpc.RpcError as err:
        if err.code() != want:
            fail(step, f"expected {want.name}, got {err.code().name}: {err.details()}")
        say(f"ok  {step} ({want.name})")
        return err
    fail(step, f"expected {want.name}, got OK")


def status_details(err):
    """The google.rpc.Status of a failed call (from grpc-status-details-bin)."""
    for key, value in err.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status()
            status.ParseFromString(value)
            return status
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", default="localhost:8080", help="the gateway, host:port")
    parser.add_argument("--product-id", help="the product to buy (default: one in stock)")
    parser.add_argument("--basket", choices=["auto", "yes", "no"], default="auto",
                        help="run the basket flow (auto: when basket answers)")
    parser.add_argument("--run-id", default=uuid.uuid4().hex[:8],
                        help="makes the e-mail and idempotency keys unique")
    args = parser.parse_args()

    channel = grpc.insecure_channel(args.target)
    try:
        grpc.channel_ready_future(channel).result(timeout=TIMEOUT)
    except grpc.FutureTimeoutError:
        fail("connect", f"no gRPC server at {args.target}")
    identity = identity_pb2_grpc.IdentityServiceStub(channel)
    catalog = catalog_pb2_grpc.CatalogServiceStub(channel)
    inventory = inventory_pb2_grpc.InventoryServiceStub(channel)
    orders = order_pb2_grpc.OrderServiceStub(channel)
    baskets = basket_pb2_grpc.BasketServiceStub(channel)
    run = args.run_id

    # ---- identity ----
    email, password = f"py-{run}@example.com", "correct-horse-battery"
    registered = call("Register", identity.Register, identity_pb2.RegisterRequest(
        email=email, password=password, display_name="Python Client"))
    if list(registered.user.roles) != ["customer"]:
        fail("Register", f"roles {list(registered.user.roles)}, expected ['customer']")
    err = refused("Register with a bad email", grpc.StatusCode.INVALID_ARGUMENT,
                  identity.Register, identity_pb2.RegisterRequest(
                      email="not-an-email", password=password, display_name="Python Client"))
    status = status_details(err)
    violations = []
    for detail in status.details if status else ():
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            violations += [v.field for v in bad.field_violations]
    if "email" not in violations:
        fail("Register with a bad email", f"no BadRequest field violation on email ({violations})")
    token = call("IssueToken (password grant)", identity.IssueToken, identity_pb2.IssueTokenRequest(
        password=identity_pb2.PasswordGrant(email=email, password=password)))
    if not token.access_token or token.token_type != "Bearer":
        fail("IssueToken", "no bearer access token")
    access = token.access_token
    me = call("GetMe with the token", identity.GetMe, identity_pb2.GetMeRequest(), access)
    if me.user.email != email:
        fail("GetMe", f"returned {me.user.email}")
    refused("GetMe without a token", grpc.StatusCode.UNAUTHENTICATED,
            identity.GetMe, identity_pb2.GetMeRequest())
    # Service-only RPCs are not reachable from outside, not even with a valid token.
    refused("ReserveStock (service only) from outside", grpc.StatusCode.UNIMPLEMENTED,
            inventory.ReserveStock, inventory_pb2.ReserveStockRequest(), access)

    # ---- catalog and stock ----
    listed = call("ListProducts", catalog.ListProducts,
                  catalog_pb2.ListProductsRequest(page_size=50))
    product_id = args.product_id
    if product_id is None:
        for product in listed.products:
            stock = inventory.GetStock(inventory_pb2.GetStockRequest(product_id=product.id),
                                       timeout=TIMEOUT)
            if stock.stock.available >= 2:
                product_id = product.id
                break
        if product_id is None:
            fail("ListProducts", "no listed product has 2 units available")
    product = call("GetProduct", catalog.GetProduct,
                   catalog_pb2.GetProductRequest(id=product_id)).product
    if product.id != product_id:
        fail("GetProduct", f"returned {product.id}")
    before = call("GetStock", inventory.GetStock,
                  inventory_pb2.GetStockRequest(product_id=product_id)).stock
    say(f"    {product.sku} {product.name!r}: {before.available} available")
    if before.available < 1:
        fail("GetStock", "the product has no stock")

    # ---- an order on the order service ----
    card = payment_pb2.Card(number=GOOD_CARD, exp_month=12, exp_year=2099, cvc="123",
                            holder_name="Python Client")
    address = order_pb2.ShippingAddress(name="Python Client", line1="1 Test Street",
                                        city="Berlin", postal_code="10115", country="DE")
    placed = call("PlaceOrder (card 4242424242424242)", orders.PlaceOrder,
                  order_pb2.PlaceOrderRequest(
                      items=[order_pb2.OrderItem(product_id=product_id, quantity=1)],
                      card=card, shipping_address=address,
                      idempotency_key=f"py-{run}-order"), access).order
    if placed.status != order_pb2.ORDER_STATUS_CONFIRMED:
        fail("PlaceOrder", f"status {order_pb2.OrderStatus.Name(placed.status)} "
                           f"({placed.cancellation_reason})")
    say(f"    order {placed.id}: total {placed.total.units}.{placed.total.nanos // 10**7:02d} "
        f"{placed.total.currency_code}")
    # The order service's own GetOrder is for the mesh only (customers read order-query).
    refused("OrderService/GetOrder (service only) from outside", grpc.StatusCode.UNIMPLEMENTED,
            orders.GetOrder, order_pb2.GetOrderRequest(id=placed.id), access)

    # ---- the basket flow ----
    if args.basket != "no":
        try:
            baskets.GetBasket(basket_pb2.GetBasketRequest(), timeout=TIMEOUT,
                              metadata=[("authorization", f"Bearer {access}")])
            basket_up = True
        except grpc.RpcError as err:
            if args.basket == "yes" or err.code() != grpc.StatusCode.UNAVAILABLE:
                fail("GetBasket", f"{err.code().name}: {err.details()}")
            basket_up = False
            say("basket is not running: basket flow skipped")
        if basket_up:
            added = call("AddItem", baskets.AddItem,
                         basket_pb2.AddItemRequest(product_id=product_id, quantity=1),
                         access).basket
            if added.item_count != 1:
                fail("AddItem", f"item count {added.item_count}")
            basket = call("GetBasket", baskets.GetBasket, basket_pb2.GetBasketRequest(),
                          access).basket
            if [line.product_id for line in basket.lines] != [product_id]:
                fail("GetBasket", "the basket does not hold exactly the product")
            checked_out = call("Checkout", baskets.Checkout, basket_pb2.CheckoutRequest(
                card=card, shipping_address=address, idempotency_key=f"py-{run}-basket"),
                access).order
            if checked_out.status != order_pb2.ORDER_STATUS_CONFIRMED:
                fail("Checkout", f"status {order_pb2.OrderStatus.Name(checked_out.status)} "
                                 f"({checked_out.cancellation_reason})")
            empty = call("GetBasket after checkout", baskets.GetBasket,
                         basket_pb2.GetBasketRequest(), access).basket
            if empty.lines:
                fail("GetBasket after checkout", "the basket was not emptied")

    say("PASS")


if __name__ == "__main__":
    main()
