-- pg_net 0.19.5, as the TripSage local stack provides it (real pg_net cannot be installed here).
--
-- Same SQL surface as supabase/pg_net's sql/pg_net.sql for 0.19.5 (identical through 0.20.4):
-- schema `net`, the unlogged queue and response tables, `net.http_get/post/delete` with the same
-- signatures, defaults, validation and encoding, the response types and collectors, the worker
-- helpers, and the same grants. What differs, and why:
--
--   * Delivery. Real pg_net has a C background worker that sends each committed request with
--     libcurl and writes the answer to `net._http_response`. Here a separate process of the local
--     stack does that: it connects with application_name 'pg_net worker', LISTENs on the channel
--     `pg_net_request_queued` and reads `net.http_request_queue`. The AFTER INSERT trigger below
--     notifies that channel with the request id; PostgreSQL delivers NOTIFY only when the
--     transaction commits, so the worker hears of a request exactly when real pg_net would see it
--     (after commit), and never of one whose transaction rolled back. `net.wake()` notifies the
--     same channel with an empty payload, meaning "look at the queue".
--   * The C helpers `_urlencode_string` and `_encode_url_with_params_array` are re-implemented
--     in SQL with libcurl's rules (curl_escape; curl_url with CURLU_APPENDQUERY). Only http and
--     https URLs are accepted (the worker speaks nothing else), the path is not normalised for
--     dot segments as libcurl would, and `_urlencode_string` is STRICT (the C one crashes on
--     NULL instead).
--   * The http_* functions do not call `net.wake()`: the queue trigger wakes the worker for every
--     row, including rows inserted into the queue directly.
--   * `net.http_collect_response` (deprecated) returns the collected response; the released
--     PL/pgSQL discards its result and fails with "query has no destination for result data".

\echo Use "CREATE EXTENSION pg_net" to load this file. \quit

create schema if not exists net;

create domain net.http_method as text
check (
  value ilike 'get'
  or value ilike 'post'
  or value ilike 'delete'
);

-- Pending requests; the worker reads from here. (API: private)
create unlogged table net.http_request_queue (
  id bigserial,
  method net.http_method not null,
  url text not null,
  headers jsonb,
  body bytea,
  timeout_milliseconds int not null
);

-- Wakes the worker once the inserting transaction commits (NOTIFY is delivered on commit only).
create function net._notify_request_queued()
  returns trigger
  language plpgsql
as $$
begin
  perform pg_notify('pg_net_request_queued', new.id::text);
  return null;
end
$$;

create trigger notify_request_queued
after insert on net.http_request_queue
for each row
execute function net._notify_request_queued();

-- Answers, one per request id, written by the worker. (API: private)
create unlogged table net._http_response (
  id bigint,
  status_code integer,
  content_type text,
  headers jsonb,
  content text,
  timed_out bool,
  error_msg text,
  created timestamptz not null default now()
);

create index on net._http_response (created);

-- The worker is the local stack's process, recognised by its application_name.
create function net.check_worker_is_up()
  returns void
  language plpgsql
as $$
begin
  if not exists (
    select pid from pg_stat_activity
    where backend_type ilike '%pg_net%' or application_name = 'pg_net worker'
  ) then
    raise exception using
      message = 'the pg_net background worker is not up',
      detail = 'the pg_net background worker is down due to an internal error and cannot process requests',
      hint = 'make sure that you didn''t modify any of pg_net internal tables';
  end if;
end
$$;
comment on function net.check_worker_is_up() is 'raises an exception if the pg_net background worker is not up, otherwise it doesn''t return anything';

-- Blocks until the response to a request has been stored. (API: private)
create function net._await_response(request_id bigint)
  returns bool
  language plpgsql
as $$
begin
  while not exists (select 1 from net._http_response r where r.id = request_id) loop
    perform pg_sleep(0.05);
  end loop;
  return true;
end
$$;

-- Percent-encodes every byte of the UTF-8 text except A-Z a-z 0-9 - . _ ~ (libcurl's
-- curl_escape). (API: private)
create function net._urlencode_string(string varchar)
  returns text
  language sql
  immutable
  strict
as $$
  select coalesce(string_agg(
           case
             when b between 48 and 57 or b between 65 and 90 or b between 97 and 122
                  or b in (45, 46, 95, 126) then chr(b)
             else '%' || upper(lpad(to_hex(b), 2, '0'))
           end, '' order by i), '')
  from (
    select i, get_byte(convert_to(string, 'UTF8'), i) as b
    from generate_series(0, octet_length(convert_to(string, 'UTF8')) - 1) as i
  ) as bytes
$$;

-- Parses the URL as libcurl's URL API does (an error for a malformed one), appends each
-- already-encoded `key=value` to its query with '&', and returns the URL with an empty path
-- written as '/'. (API: private)
create function net._encode_url_with_params_array(url text, params_array text[])
  returns text
  language plpgsql
  immutable
as $$
declare
  parts text[];
  port text;
  query text;
  param text;
begin
  parts := regexp_match(url,
    '^([A-Za-z][A-Za-z0-9+.-]*)://((?:[^/?#@]*@)?(?:\[[0-9A-Fa-f:.]+\]|[^/?#:@\[\]]+)(?::([0-9]*))?)([^?#]*)(\?[^#]*)?(#.*)?$');
  if parts is null or lower(parts[1]) not in ('http', 'https')
     or url ~ '[[:space:][:cntrl:]]' then
    raise exception 'URL using bad/illegal format or missing URL';
  end if;
  port := parts[3];
  if port is not null and port <> '' and (length(port) > 5 or port::int > 65535) then
    raise exception 'URL using bad/illegal format or missing URL';
  end if;

  query := substr(parts[5], 2);
  foreach param in array coalesce(params_array, '{}') loop
    continue when param is null;
    query := case when query is null or query = '' then param else query || '&' || param end;
  end loop;

  return lower(parts[1]) || '://' || parts[2]
    || case when parts[4] = '' then '/' else parts[4] end
    || coalesce('?' || query, '')
    || coalesce(parts[6], '');
end
$$;

-- Restarts the worker: ends its connection, and the local stack's worker reconnects.
create function net.worker_restart()
  returns bool
  language sql
  security definer
  set search_path = pg_catalog
as $$
  select coalesce(bool_or(pg_terminate_backend(pid)), false)
  from pg_stat_activity
  where application_name = 'pg_net worker' and pid <> pg_backend_pid()
$$;

create function net.wait_until_running()
  returns void
  language plpgsql
as $$
begin
  loop
    exit when exists (
      select 1 from pg_stat_activity
      where backend_type ilike '%pg_net%' or application_name = 'pg_net worker'
    );
    perform pg_sleep(0.05);
    perform pg_stat_clear_snapshot();
  end loop;
end
$$;
comment on function net.wait_until_running() is 'waits until the worker is running';

create function net.wake()
  returns void
  language sql
as $$
  select pg_notify('pg_net_request_queued', '')
$$;

-- Queues an asynchronous GET. (API: public)
create function net.http_get(
  -- url for the request
  url text,
  -- key/value pairs to be url encoded and appended to the `url`
  params jsonb default '{}'::jsonb,
  -- key/values to be included in request headers
  headers jsonb default '{}'::jsonb,
  -- the maximum number of milliseconds the request may take before being cancelled
  timeout_milliseconds int default 5000
)
  -- request_id reference
  returns bigint
  language plpgsql
as $$
declare
  request_id bigint;
  params_array text[];
begin
  select coalesce(array_agg(net._urlencode_string(key) || '=' || net._urlencode_string(value)), '{}')
  into params_array
  from jsonb_each_text(params);

  insert into net.http_request_queue (method, url, headers, timeout_milliseconds)
  values ('GET', net._encode_url_with_params_array(url, params_array), headers, timeout_milliseconds)
  returning id into request_id;

  return request_id;
end
$$;

-- Queues an asynchronous POST of a JSON body; the bytes sent are exactly `body::text`.
-- (API: public)
create function net.http_post(
  -- url for the request
  url text,
  -- body of the POST request
  body jsonb default '{}'::jsonb,
  -- key/value pairs to be url encoded and appended to the `url`
  params jsonb default '{}'::jsonb,
  -- key/values to be included in request headers
  headers jsonb default '{"Content-Type": "application/json"}'::jsonb,
  -- the maximum number of milliseconds the request may take before being cancelled
  timeout_milliseconds int default 5000
)
  -- request_id reference
  returns bigint
  language plpgsql
as $$
declare
  request_id bigint;
  params_array text[];
  content_type text;
begin
  select header_value
  into content_type
  from jsonb_each_text(coalesce(headers, '{}'::jsonb)) as r(header_name, header_value)
  where lower(header_name) = 'content-type'
  limit 1;

  -- Headers given without a content type get the JSON one added.
  if content_type is null then
    headers := headers || '{"Content-Type": "application/json"}'::jsonb;
  end if;

  if content_type <> 'application/json' then
    raise exception 'Content-Type header must be "application/json"';
  end if;

  select coalesce(array_agg(net._urlencode_string(key) || '=' || net._urlencode_string(value)), '{}')
  into params_array
  from jsonb_each_text(params);

  insert into net.http_request_queue (method, url, headers, body, timeout_milliseconds)
  values (
    'POST',
    net._encode_url_with_params_array(url, params_array),
    headers,
    convert_to(body::text, 'UTF8'),
    timeout_milliseconds
  )
  returning id into request_id;

  return request_id;
end
$$;

-- Queues an asynchronous DELETE, with an optional JSON body. (API: public)
create function net.http_delete(
  -- url for the request
  url text,
  -- key/value pairs to be url encoded and appended to the `url`
  params jsonb default '{}'::jsonb,
  -- key/values to be included in request headers
  headers jsonb default '{}'::jsonb,
  -- the maximum number of milliseconds the request may take before being cancelled
  timeout_milliseconds int default 5000,
  -- optional body of the request
  body jsonb default null
)
  -- request_id reference
  returns bigint
  language plpgsql
as $$
declare
  request_id bigint;
  params_array text[];
begin
  select coalesce(array_agg(net._urlencode_string(key) || '=' || net._urlencode_string(value)), '{}')
  into params_array
  from jsonb_each_text(params);

  insert into net.http_request_queue (method, url, headers, body, timeout_milliseconds)
  values (
    'DELETE',
    net._encode_url_with_params_array(url, params_array),
    headers,
    convert_to(body::text, 'UTF8'),
    timeout_milliseconds
  )
  returning id into request_id;

  return request_id;
end
$$;

-- Lifecycle states of a request. (API: public)
create type net.request_status as enum ('PENDING', 'SUCCESS', 'ERROR');

-- A response from an HTTP server. (API: public)
create type net.http_response as (
  status_code integer,
  headers jsonb,
  body text
);

-- State wrapper around responses. (API: public)
create type net.http_response_result as (
  status net.request_status,
  message text,
  response net.http_response
);

-- The response to a request, or an ERROR result while there is none (pending and unknown
-- requests look the same) or when the request failed. (API: private)
create function net._http_collect_response(
  -- request_id reference
  request_id bigint,
  -- when `true`, return immediately. when `false` wait for the request to complete before returning
  async bool default true
)
  returns net.http_response_result
  language plpgsql
as $$
declare
  rec net._http_response;
begin
  if not async then
    perform net._await_response(request_id);
  end if;

  select * into rec from net._http_response r where r.id = request_id;

  if rec is null or rec.error_msg is not null then
    return (
      'ERROR',
      coalesce(rec.error_msg, 'request matching request_id not found'),
      null
    )::net.http_response_result;
  end if;

  return (
    'SUCCESS',
    'ok',
    (rec.status_code, rec.headers, rec.content)::net.http_response
  )::net.http_response_result;
end
$$;

create function net.http_collect_response(
  -- request_id reference
  request_id bigint,
  -- when `true`, return immediately. when `false` wait for the request to complete before returning
  async bool default true
)
  returns net.http_response_result
  language plpgsql
as $$
begin
  raise notice 'The net.http_collect_response function is deprecated.';
  return net._http_collect_response(request_id, async);
end
$$;

grant usage on schema net to public;
grant all on all sequences in schema net to public;
grant all on all tables in schema net to public;
