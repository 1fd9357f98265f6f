DROP TABLE product_names;
DROP TABLE product_sales_hourly;
DROP TABLE sales_hourly;
DROP TABLE order_sale_lines;
DROP TABLE order_sales;
