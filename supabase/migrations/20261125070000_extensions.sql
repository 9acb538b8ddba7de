-- Extensions TripSage needs. On a hosted project these are created in the `extensions` schema
-- (pg_cron lives in `pg_catalog`, pg_net creates its own `net` schema). Server settings such as
-- `cron.database_name` or `pg_stat_statements.track` are not migration material: hosted Supabase
-- forbids ALTER SYSTEM, so docs/operations.md#deploying-to-a-hosted-project lists them for the
-- dashboard.
create schema if not exists extensions;

create extension if not exists "uuid-ossp" with schema extensions;
create extension if not exists pgcrypto with schema extensions;
create extension if not exists pg_stat_statements with schema extensions;
create extension if not exists btree_gist with schema extensions;
create extension if not exists vector with schema extensions;
create extension if not exists pg_cron;
create extension if not exists pg_net with schema extensions;
