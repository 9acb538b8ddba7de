-- What a hosted Supabase database already has before the project's first migration, for the
-- local cluster of scripts/db (applied once, by the superuser `postgres`, right after initdb).
--
-- Follows supabase/postgres (migrations/db/init-scripts and the platform migrations after them,
-- as dumped in migrations/schema-15.sql) and supabase/auth's migrations for the `auth` schema,
-- reduced to what a project's migrations and tests can see: the API roles and their grants, the
-- `extensions` schema, `auth.users` and the `auth` helper functions, the default privileges in
-- `public`, the realtime publication and the event triggers that grant access to pg_cron and
-- pg_net when a migration creates them. Differences from hosted, all deliberate:
--   * `postgres` stays the superuser that initdb made (hosted demotes it and lets it create
--     extensions through supautils, which is not available here);
--   * no storage, realtime, vault, graphql or pgsodium schemas: nothing in this project uses them;
--   * `auth` has `users` with its current columns and the helper functions, not GoTrue's other
--     tables (sessions, identities, MFA...), since only GoTrue itself uses those.
-- Nothing here belongs to the project: no tables in `public`.

-- Roles ----------------------------------------------------------------------------------------

-- The platform's own superuser (the Supabase CLI's local stack logs in as it with the same
-- password as `postgres`).
create role supabase_admin with login superuser createdb createrole replication bypassrls
  password 'postgres';

-- The API roles. Created NOINHERIT by the init script; the platform migration
-- 20230529180330_alter_api_roles_for_inherit made them INHERIT, as they are on hosted projects.
create role anon nologin inherit;
create role authenticated nologin inherit;
create role service_role nologin inherit bypassrls;

-- PostgREST logs in as authenticator and switches to the role named in the request's JWT.
create role authenticator with login noinherit password 'postgres';
grant anon, authenticated, service_role to authenticator;

-- Owner of the auth schema's objects (GoTrue runs its migrations as this role).
create role supabase_auth_admin with login noinherit createrole noreplication password 'postgres';

-- Per-role settings as on hosted projects (PostgREST applies them to the role it switches to).
alter role anon set statement_timeout = '3s';
alter role authenticated set statement_timeout = '8s';
alter role authenticator set statement_timeout = '8s';
alter role authenticator set lock_timeout = '8s';
alter role supabase_auth_admin set search_path = auth;
alter role supabase_admin set search_path = "$user", public, auth, extensions;
alter role postgres set search_path = "$user", public, extensions;
alter database postgres set search_path = "$user", public, extensions;

-- Extensions -----------------------------------------------------------------------------------

create schema extensions;
grant usage on schema extensions to postgres, anon, authenticated, service_role;

create extension "uuid-ossp" with schema extensions;
create extension pgcrypto with schema extensions;
create extension pg_stat_statements with schema extensions;

-- The API roles' access to what `postgres` creates in `public`: everything is granted, and row
-- level security is what restricts it.
grant usage on schema public to postgres, anon, authenticated, service_role;
alter default privileges for role postgres in schema public
  grant all on tables to postgres, anon, authenticated, service_role;
alter default privileges for role postgres in schema public
  grant all on functions to postgres, anon, authenticated, service_role;
alter default privileges for role postgres in schema public
  grant all on sequences to postgres, anon, authenticated, service_role;
alter default privileges for role supabase_admin in schema public
  grant all on tables to postgres, anon, authenticated, service_role;
alter default privileges for role supabase_admin in schema public
  grant all on functions to postgres, anon, authenticated, service_role;
alter default privileges for role supabase_admin in schema public
  grant all on sequences to postgres, anon, authenticated, service_role;

-- Auth -----------------------------------------------------------------------------------------

create schema auth authorization supabase_admin;
grant usage on schema auth to anon, authenticated, service_role, postgres;
grant all privileges on schema auth to supabase_auth_admin;

-- auth.users with the columns GoTrue's migrations give it today.
create table auth.users (
  instance_id uuid,
  id uuid not null,
  aud varchar(255),
  role varchar(255),
  email varchar(255),
  encrypted_password varchar(255),
  email_confirmed_at timestamptz,
  invited_at timestamptz,
  confirmation_token varchar(255),
  confirmation_sent_at timestamptz,
  recovery_token varchar(255),
  recovery_sent_at timestamptz,
  email_change_token_new varchar(255),
  email_change varchar(255),
  email_change_sent_at timestamptz,
  last_sign_in_at timestamptz,
  raw_app_meta_data jsonb,
  raw_user_meta_data jsonb,
  is_super_admin boolean,
  created_at timestamptz,
  updated_at timestamptz,
  phone text default null,
  phone_confirmed_at timestamptz,
  phone_change text default '',
  phone_change_token varchar(255) default '',
  phone_change_sent_at timestamptz,
  confirmed_at timestamptz generated always as (least(email_confirmed_at, phone_confirmed_at)) stored,
  email_change_token_current varchar(255) default '',
  email_change_confirm_status smallint default 0,
  banned_until timestamptz,
  reauthentication_token varchar(255) default '',
  reauthentication_sent_at timestamptz,
  is_sso_user boolean not null default false,
  deleted_at timestamptz,
  is_anonymous boolean not null default false,
  constraint users_pkey primary key (id),
  constraint users_phone_key unique (phone),
  constraint users_email_change_confirm_status_check
    check (email_change_confirm_status >= 0 and email_change_confirm_status <= 2)
);
comment on table auth.users is 'Auth: Stores user login data within a secure schema.';
comment on column auth.users.is_sso_user is 'Auth: Set this column to true when the account comes from SSO. These accounts can have duplicate emails.';
create index users_instance_id_idx on auth.users (instance_id);
create index users_instance_id_email_idx on auth.users (instance_id, lower(email));
create unique index users_email_partial_key on auth.users (email) where (is_sso_user = false);
comment on index auth.users_email_partial_key is 'Auth: A partial unique index that applies only when is_sso_user is false';
create index users_is_anonymous_idx on auth.users (is_anonymous);
create unique index confirmation_token_idx on auth.users (confirmation_token)
  where confirmation_token !~ '^[0-9 ]*$';
create unique index recovery_token_idx on auth.users (recovery_token)
  where recovery_token !~ '^[0-9 ]*$';
create unique index email_change_token_current_idx on auth.users (email_change_token_current)
  where email_change_token_current !~ '^[0-9 ]*$';
create unique index email_change_token_new_idx on auth.users (email_change_token_new)
  where email_change_token_new !~ '^[0-9 ]*$';
create unique index reauthentication_token_idx on auth.users (reauthentication_token)
  where reauthentication_token !~ '^[0-9 ]*$';
alter table auth.users enable row level security;
alter table auth.users owner to supabase_auth_admin;
-- What the platform gives postgres on auth tables: all, and select with grant option.
grant all on auth.users to postgres;
grant select on auth.users to postgres with grant option;

-- The claims of the request's JWT, as PostgREST sets them (request.jwt.claims), with the legacy
-- one-setting-per-claim form (request.jwt.claim.<name>) first, as GoTrue defines them.
create function auth.uid()
  returns uuid
  language sql
  stable
  set search_path to ''
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.sub', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
  )::uuid
$$;

create function auth.role()
  returns text
  language sql
  stable
  set search_path to ''
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.role', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
  )::text
$$;

create function auth.email()
  returns text
  language sql
  stable
  set search_path to ''
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.email', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'email')
  )::text
$$;

create function auth.jwt()
  returns jsonb
  language sql
  stable
  set search_path to ''
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim', true), ''),
    nullif(current_setting('request.jwt.claims', true), '')
  )::jsonb
$$;

comment on function auth.uid() is 'Deprecated. Use auth.jwt() -> ''sub'' instead.';
comment on function auth.role() is 'Deprecated. Use auth.jwt() -> ''role'' instead.';
comment on function auth.email() is 'Deprecated. Use auth.jwt() -> ''email'' instead.';
alter function auth.uid() owner to supabase_auth_admin;
alter function auth.role() owner to supabase_auth_admin;
alter function auth.email() owner to supabase_auth_admin;
alter function auth.jwt() owner to supabase_auth_admin;
grant all on function auth.uid(), auth.role(), auth.email(), auth.jwt() to postgres;

-- GraphQL --------------------------------------------------------------------------------------

-- config.toml exposes graphql_public through the API. pg_graphql is off by default on new
-- projects (and not installable here), so the schema holds the platform's placeholder.
create schema graphql_public;
grant usage on schema graphql_public to postgres, anon, authenticated, service_role;
alter default privileges in schema graphql_public
  grant all on tables to postgres, anon, authenticated, service_role;
alter default privileges in schema graphql_public
  grant all on functions to postgres, anon, authenticated, service_role;
alter default privileges in schema graphql_public
  grant all on sequences to postgres, anon, authenticated, service_role;

create function graphql_public.graphql(
  "operationName" text default null,
  query text default null,
  variables jsonb default null,
  extensions jsonb default null
)
  returns jsonb
  language sql
as $$
  select jsonb_build_object('errors', jsonb_build_array(
    jsonb_build_object('message', 'pg_graphql extension is not enabled.')))
$$;

-- Realtime -------------------------------------------------------------------------------------

-- Empty until a migration adds tables to it.
create publication supabase_realtime;

-- Access to pg_cron and pg_net when a migration creates them --------------------------------------

create function extensions.grant_pg_cron_access()
  returns event_trigger
  language plpgsql
as $$
begin
  if exists (
    select
    from pg_event_trigger_ddl_commands() as ev
    join pg_extension as ext on ev.objid = ext.oid
    where ext.extname = 'pg_cron'
  ) then
    grant usage on schema cron to postgres with grant option;

    alter default privileges in schema cron grant all on tables to postgres with grant option;
    alter default privileges in schema cron grant all on functions to postgres with grant option;
    alter default privileges in schema cron grant all on sequences to postgres with grant option;

    alter default privileges for user supabase_admin in schema cron grant all
      on sequences to postgres with grant option;
    alter default privileges for user supabase_admin in schema cron grant all
      on tables to postgres with grant option;
    alter default privileges for user supabase_admin in schema cron grant all
      on functions to postgres with grant option;

    grant all privileges on all tables in schema cron to postgres with grant option;
    revoke all on table cron.job from postgres;
    grant select on table cron.job to postgres with grant option;
  end if;
end;
$$;
comment on function extensions.grant_pg_cron_access() is 'Grants access to pg_cron';

create event trigger issue_pg_cron_access on ddl_command_end
  when tag in ('CREATE EXTENSION')
  execute function extensions.grant_pg_cron_access();

-- pg_net 0.12 and later keep their own function grants; the platform adds schema usage and the
-- role the database webhooks run as.
create function extensions.grant_pg_net_access()
  returns event_trigger
  language plpgsql
as $$
begin
  if exists (
    select 1
    from pg_event_trigger_ddl_commands() as ev
    join pg_extension as ext on ev.objid = ext.oid
    where ext.extname = 'pg_net'
  ) then
    if not exists (select 1 from pg_roles where rolname = 'supabase_functions_admin') then
      create user supabase_functions_admin noinherit createrole login noreplication;
    end if;

    grant usage on schema net to supabase_functions_admin, postgres, anon, authenticated, service_role;
  end if;
end;
$$;
comment on function extensions.grant_pg_net_access() is 'Grants access to pg_net';

create event trigger issue_pg_net_access on ddl_command_end
  when tag in ('CREATE EXTENSION')
  execute function extensions.grant_pg_net_access();

-- PostgREST's schema cache reload on DDL -------------------------------------------------------

create function extensions.pgrst_ddl_watch()
  returns event_trigger
  language plpgsql
as $$
declare
  cmd record;
begin
  for cmd in select * from pg_event_trigger_ddl_commands() loop
    if cmd.command_tag in (
      'CREATE SCHEMA', 'ALTER SCHEMA',
      'CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO', 'ALTER TABLE',
      'CREATE FOREIGN TABLE', 'ALTER FOREIGN TABLE',
      'CREATE VIEW', 'ALTER VIEW',
      'CREATE MATERIALIZED VIEW', 'ALTER MATERIALIZED VIEW',
      'CREATE FUNCTION', 'ALTER FUNCTION',
      'CREATE TRIGGER',
      'CREATE TYPE', 'ALTER TYPE',
      'CREATE RULE',
      'COMMENT'
    )
    -- not for temporary objects
    and cmd.schema_name is distinct from 'pg_temp' then
      notify pgrst, 'reload schema';
    end if;
  end loop;
end;
$$;

create function extensions.pgrst_drop_watch()
  returns event_trigger
  language plpgsql
as $$
declare
  obj record;
begin
  for obj in select * from pg_event_trigger_dropped_objects() loop
    if obj.object_type in (
      'schema', 'table', 'foreign table', 'view', 'materialized view',
      'function', 'trigger', 'type', 'rule'
    )
    and obj.is_temporary is false then
      notify pgrst, 'reload schema';
    end if;
  end loop;
end;
$$;

create event trigger pgrst_ddl_watch on ddl_command_end
  execute function extensions.pgrst_ddl_watch();

create event trigger pgrst_drop_watch on sql_drop
  execute function extensions.pgrst_drop_watch();
