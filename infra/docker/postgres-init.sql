-- Run by the postgres image on the first start of an empty data volume (/docker-entrypoint-initdb.d).
-- Each subgraph owns a separate database; neither reads the other's. Tables come from `npm run db:migrate`.
CREATE DATABASE users;
CREATE DATABASE orders;
