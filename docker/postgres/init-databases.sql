-- One database per service (stack/services.py DATABASES), created on the container's first start (an empty data
-- directory). The services also create their database if it is missing, and migrate it at start.
CREATE DATABASE users;
CREATE DATABASE stock;
CREATE DATABASE orders;
CREATE DATABASE sagas;
