DROP TABLE redemptions;
DROP TABLE coupons;
