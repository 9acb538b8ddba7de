-- Signed webhook delivery through pg_net, with real retries.
--
-- A delivery is one event sent to one webhook; it has one Standard Webhooks `webhook-id` for its
-- whole life. Each attempt is a webhook_logs row holding the pg_net request id. pg_net sends after
-- commit and records the answer in net._http_response; process_webhook_responses() (pg_cron, every
-- few seconds) reads those answers, and re-sends retryable failures with exponential backoff: same
-- webhook-id and body, fresh timestamp and signature. A delivery that runs out of retries, or
-- fails in a way retrying cannot fix, is dead-lettered and can be replayed with replay_webhook().
--
-- Sending never raises into the caller: a missing, inactive or unsubscribed webhook is logged as
-- `skipped`, so a trigger can never abort the user's transaction.

create table public.webhook_configs (
  id bigint generated always as identity primary key,
  name text not null unique,
  url text not null check (url ~ '^https?://'),
  -- One or more space-separated Standard Webhooks secrets (whsec_<base64>). Every one of them
  -- signs each attempt, so a receiver can move to a new secret without a gap.
  secret text check (secret ~ '^whsec_[A-Za-z0-9+/]+={0,2}( whsec_[A-Za-z0-9+/]+={0,2})*$'),
  events text[] not null default '{}',
  headers jsonb not null default '{}' check (jsonb_typeof(headers) = 'object'),
  -- max_retries: retries after the first attempt; retry_delay (ms) grows by backoff_multiplier
  -- per retry up to max_delay (ms). A Retry-After answer is honoured up to max_delay.
  retry_config jsonb not null
    default '{"max_retries": 3, "retry_delay": 1000, "backoff_multiplier": 2, "max_delay": 300000}'
    check (jsonb_typeof(retry_config) = 'object'),
  timeout_milliseconds integer not null default 10000 check (timeout_milliseconds > 0),
  is_active boolean not null default true,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create trigger set_updated_at before update on public.webhook_configs
  for each row execute function public.set_updated_at();

create table public.webhook_logs (
  id bigint generated always as identity primary key,
  webhook_config_id bigint references public.webhook_configs (id) on delete set null,
  webhook_name text,
  webhook_id text not null,
  event_type text not null,
  payload jsonb not null,
  attempt_count integer not null default 1 check (attempt_count >= 1),
  status text not null
    check (status in ('skipped', 'sent', 'succeeded', 'retry_scheduled', 'retried', 'dead', 'replayed')),
  retries_remaining integer not null default 0,
  request_id bigint,
  response_status integer,
  response_body text,
  error_message text,
  next_attempt_at timestamptz,
  created_at timestamptz not null default clock_timestamp(),
  completed_at timestamptz
);
comment on column public.webhook_logs.attempt_count is
  'Number of this attempt within its delivery (1 = first); sent as X-Webhook-Attempt.';
comment on column public.webhook_logs.status is
  'skipped: not sent (see error_message); sent: awaiting pg_net; succeeded: 2xx; '
  'retry_scheduled: failed, resent at next_attempt_at; retried: a later attempt exists; '
  'dead: dead-lettered; replayed: dead-lettered, then replayed by replay_webhook().';
create index webhook_logs_webhook_id_idx on public.webhook_logs (webhook_id, attempt_count);
create index webhook_logs_request_id_idx on public.webhook_logs (request_id) where status = 'sent';
create index webhook_logs_due_idx on public.webhook_logs (next_attempt_at) where status = 'retry_scheduled';
create index webhook_logs_config_created_idx on public.webhook_logs (webhook_config_id, created_at desc);

-- Webhook configuration holds secrets: only service_role (which bypasses RLS) may read it.
alter table public.webhook_configs enable row level security;
alter table public.webhook_logs enable row level security;
revoke all on table public.webhook_configs, public.webhook_logs from anon, authenticated;

-- The deliveries an edge function has completed, by webhook-id: the same webhook-id again is
-- answered `{"duplicate": true}` without doing anything. Kept as long as the delivery history.
create table public.webhook_receipts (
  function_name text not null,
  webhook_id text not null,
  event text not null,
  outcome jsonb not null default '{}',
  received_at timestamptz not null default now(),
  primary key (function_name, webhook_id)
);
comment on table public.webhook_receipts is
  'Deliveries an edge function has completed, by Standard Webhooks webhook-id.';
alter table public.webhook_receipts enable row level security;
revoke all on public.webhook_receipts from anon, authenticated;
grant select, insert, delete on public.webhook_receipts to service_role;

-- Pure pieces ------------------------------------------------------------------------------------

-- Standard Webhooks v1: base64 HMAC-SHA256 of "{id}.{timestamp}.{body}" under each secret's
-- decoded key, as a space-separated list of "v1,<signature>".
create or replace function public.webhook_signature(
  p_secrets text, p_webhook_id text, p_timestamp bigint, p_body text)
returns text
language sql
immutable
strict
set search_path = ''
as $$
  select string_agg(
    'v1,' || encode(extensions.hmac(
      convert_to(p_webhook_id || '.' || p_timestamp || '.' || p_body, 'UTF8'),
      decode(substr(s.secret, 7), 'base64'),
      'sha256'), 'base64'),
    ' ' order by s.n)
  from regexp_split_to_table(btrim(p_secrets), '\s+') with ordinality as s (secret, n);
$$;

-- The original TripSage signature: lowercase hex HMAC-SHA256 of the body alone, under the first
-- secret's key. Receivers accept it only when told to (it has no replay protection).
create or replace function public.webhook_legacy_signature(p_secrets text, p_body text)
returns text
language sql
immutable
strict
set search_path = ''
as $$
  select encode(extensions.hmac(
    convert_to(p_body, 'UTF8'),
    decode(substr(split_part(btrim(p_secrets), ' ', 1), 7), 'base64'),
    'sha256'), 'hex');
$$;

-- Timeouts, connection errors, 408, 429 and 5xx may succeed later; any other answer will not.
create or replace function public.webhook_response_is_retryable(
  p_status integer, p_timed_out boolean, p_error text)
returns boolean
language sql
immutable
set search_path = ''
as $$
  select coalesce(p_timed_out, false)
      or p_error is not null
      or p_status is null
      or p_status in (408, 429)
      or p_status >= 500;
$$;

-- Delay before retry number p_retry (1 = first retry): retry_delay * backoff_multiplier^(n-1),
-- at most max_delay; a longer Retry-After (in seconds) wins, still at most max_delay.
create or replace function public.webhook_retry_delay(
  p_retry_config jsonb, p_retry integer, p_retry_after text default null)
returns interval
language sql
immutable
set search_path = ''
as $$
  select make_interval(secs => least(
      greatest(
        coalesce((p_retry_config ->> 'retry_delay')::numeric, 1000)
          * power(coalesce((p_retry_config ->> 'backoff_multiplier')::numeric, 2),
                  greatest(p_retry, 1) - 1),
        case when btrim(p_retry_after) ~ '^\d{1,9}$' then btrim(p_retry_after)::numeric * 1000 end
      ),
      coalesce((p_retry_config ->> 'max_delay')::numeric, 300000)
    ) / 1000.0);
$$;

-- Sending ----------------------------------------------------------------------------------------

-- Queues one signed attempt through pg_net and logs it. The body is passed as jsonb and signed as
-- jsonb::text, which is exactly the text pg_net sends.
create or replace function public.webhook_send_attempt(
  p_config public.webhook_configs,
  p_webhook_id text,
  p_event_type text,
  p_payload jsonb,
  p_attempt integer,
  p_retries_remaining integer)
returns bigint
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_timestamp bigint := floor(extract(epoch from clock_timestamp()))::bigint;
  v_body text := p_payload::text;
  v_request_id bigint;
  v_log_id bigint;
begin
  begin
    v_request_id := net.http_post(
      url := p_config.url,
      body := p_payload,
      headers := p_config.headers || jsonb_build_object(
        'Content-Type', 'application/json',
        'webhook-id', p_webhook_id,
        'webhook-timestamp', v_timestamp::text,
        'webhook-signature', public.webhook_signature(p_config.secret, p_webhook_id, v_timestamp, v_body),
        'X-Webhook-Event', p_event_type,
        'X-Webhook-Attempt', p_attempt::text,
        'X-Webhook-Timestamp', v_timestamp::text,
        'X-Webhook-Signature', public.webhook_legacy_signature(p_config.secret, v_body)),
      timeout_milliseconds := p_config.timeout_milliseconds);
  exception when others then
    insert into public.webhook_logs (webhook_config_id, webhook_name, webhook_id, event_type,
      payload, attempt_count, status, error_message, completed_at)
    values (p_config.id, p_config.name, p_webhook_id, p_event_type, p_payload, p_attempt, 'dead',
      'could not queue the request: ' || sqlerrm, clock_timestamp())
    returning id into v_log_id;
    return v_log_id;
  end;

  insert into public.webhook_logs (webhook_config_id, webhook_name, webhook_id, event_type,
    payload, attempt_count, status, retries_remaining, request_id)
  values (p_config.id, p_config.name, p_webhook_id, p_event_type, p_payload, p_attempt, 'sent',
    p_retries_remaining, v_request_id)
  returning id into v_log_id;
  return v_log_id;
end;
$$;

-- Starts a delivery of an event to the named webhook. Returns the webhook_logs id of the first
-- attempt, or of the `skipped` row when the webhook cannot take it.
create or replace function public.deliver_webhook(
  p_webhook_name text,
  p_event_type text,
  p_payload jsonb,
  p_attempt integer default 1,
  p_require_subscription boolean default true)
returns bigint
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_config public.webhook_configs;
  v_payload jsonb := coalesce(p_payload, '{}') || jsonb_build_object('event', p_event_type);
  v_skip text;
  v_log_id bigint;
begin
  select * into v_config from public.webhook_configs where name = p_webhook_name;

  v_skip := case
    when v_config.id is null then format('webhook %s does not exist', p_webhook_name)
    when not v_config.is_active then format('webhook %s is inactive', p_webhook_name)
    when p_require_subscription and not (p_event_type = any (v_config.events))
      then format('webhook %s is not subscribed to %s', p_webhook_name, p_event_type)
    when v_config.secret is null then format('webhook %s has no signing secret', p_webhook_name)
  end;

  if v_skip is not null then
    insert into public.webhook_logs (webhook_config_id, webhook_name, webhook_id, event_type,
      payload, attempt_count, status, error_message, completed_at)
    values (v_config.id, p_webhook_name, public.new_webhook_id(), p_event_type, v_payload,
      greatest(p_attempt, 1), 'skipped', v_skip, clock_timestamp())
    returning id into v_log_id;
    return v_log_id;
  end if;

  return public.webhook_send_attempt(v_config, public.new_webhook_id(), p_event_type, v_payload,
    greatest(p_attempt, 1), public.webhook_max_retries(v_config.retry_config));
end;
$$;

create or replace function public.new_webhook_id()
returns text
language sql
volatile
set search_path = ''
as $$ select 'msg_' || replace(gen_random_uuid()::text, '-', '') $$;

create or replace function public.webhook_max_retries(p_retry_config jsonb)
returns integer
language sql
immutable
set search_path = ''
as $$ select greatest(coalesce((p_retry_config ->> 'max_retries')::integer, 3), 0) $$;

-- The original API: send an event to one named webhook.
create or replace function public.send_webhook_with_retry(
  p_webhook_name text,
  p_event_type text,
  p_payload jsonb,
  p_attempt integer default 1)
returns bigint
language sql
security definer
set search_path = ''
as $$ select public.deliver_webhook(p_webhook_name, p_event_type, p_payload, p_attempt) $$;

-- Sends an event to every webhook subscribed to it (inactive ones are logged as skipped). Only
-- events that the event catalog says are emitted go out; any other is logged as skipped.
create or replace function public.dispatch_webhook_event(p_event_type text, p_payload jsonb)
returns bigint[]
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_name text;
  v_log_ids bigint[] := '{}';
begin
  if not exists (select 1 from public.event_catalog e
                 where e.event_type = p_event_type and cardinality(e.emitted_by) > 0) then
    v_log_ids := array[public.deliver_webhook(null, p_event_type, p_payload)];
    update public.webhook_logs
      set error_message = format('%s is not an emitted event of the event catalog', p_event_type)
      where id = v_log_ids[1];
    return v_log_ids;
  end if;
  for v_name in
    select name from public.webhook_configs where p_event_type = any (events) order by id
  loop
    v_log_ids := v_log_ids || public.deliver_webhook(v_name, p_event_type, p_payload);
  end loop;
  if cardinality(v_log_ids) = 0 then
    v_log_ids := array[public.deliver_webhook(null, p_event_type, p_payload)];
    update public.webhook_logs
      set error_message = format('no webhook is subscribed to %s', p_event_type)
      where id = v_log_ids[1];
  end if;
  return v_log_ids;
end;
$$;

-- Sends a `test.webhook` event to the named webhook, subscribed to it or not.
create or replace function public.test_webhook(
  p_webhook_name text,
  p_test_payload jsonb default '{"test": true}')
returns bigint
language sql
security definer
set search_path = ''
as $$
  select public.deliver_webhook(p_webhook_name, 'test.webhook',
    coalesce(p_test_payload, '{}') || jsonb_build_object('timestamp', now()), 1, false)
$$;

-- Collecting answers and retrying ----------------------------------------------------------------

-- Reads pg_net's answers for attempts in flight, schedules retries, dead-letters what cannot be
-- delivered, and re-sends retries that are due. Safe to run concurrently (SKIP LOCKED).
create or replace function public.process_webhook_responses(
  p_lost_after interval default interval '10 minutes')
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_attempt record;
  v_config public.webhook_configs;
  v_now timestamptz := clock_timestamp();
  v_ok boolean;
  v_error text;
  v_collected integer := 0;
  v_succeeded integer := 0;
  v_retry_scheduled integer := 0;
  v_dead integer := 0;
  v_resent integer := 0;
begin
  -- 1. Answers recorded by pg_net, and attempts pg_net has lost track of (no queued request, no
  --    answer, long past their timeout) — the latter count as connection errors.
  for v_attempt in
    select l.id, l.attempt_count, l.retries_remaining, c.retry_config,
           r.id is not null as answered, r.status_code, r.content, r.timed_out, r.error_msg,
           r.created as answered_at,
           (select h.value from jsonb_each_text(r.headers) h
             where lower(h.key) = 'retry-after' limit 1) as retry_after
    from public.webhook_logs l
    left join public.webhook_configs c on c.id = l.webhook_config_id
    left join net._http_response r on r.id = l.request_id
    where l.status = 'sent'
      and (r.id is not null
        or (l.created_at < v_now - p_lost_after
            - make_interval(secs => coalesce(c.timeout_milliseconds, 0) / 1000.0)
            and not exists (select 1 from net.http_request_queue q where q.id = l.request_id)))
    for update of l skip locked
  loop
    v_collected := v_collected + 1;
    v_ok := v_attempt.answered and v_attempt.status_code between 200 and 299
      and not coalesce(v_attempt.timed_out, false) and v_attempt.error_msg is null;
    v_error := case
      when v_ok then null
      when not v_attempt.answered then 'no answer was recorded for the request'
      when v_attempt.timed_out then coalesce(v_attempt.error_msg, 'request timed out')
      when v_attempt.error_msg is not null then v_attempt.error_msg
      else format('HTTP %s', v_attempt.status_code)
    end;

    if v_ok then
      update public.webhook_logs set status = 'succeeded'
        where id = v_attempt.id;
      v_succeeded := v_succeeded + 1;
    elsif public.webhook_response_is_retryable(v_attempt.status_code, v_attempt.timed_out, v_attempt.error_msg)
          and v_attempt.retries_remaining > 0 then
      update public.webhook_logs set
        status = 'retry_scheduled',
        error_message = v_error,
        next_attempt_at = v_now + public.webhook_retry_delay(v_attempt.retry_config,
          public.webhook_max_retries(v_attempt.retry_config) - v_attempt.retries_remaining + 1,
          v_attempt.retry_after)
        where id = v_attempt.id;
      v_retry_scheduled := v_retry_scheduled + 1;
    else
      update public.webhook_logs set
        status = 'dead',
        error_message = v_error || case
          when public.webhook_response_is_retryable(v_attempt.status_code, v_attempt.timed_out, v_attempt.error_msg)
            then format(' (no retries left after attempt %s)', v_attempt.attempt_count)
          else ' (not retryable)' end
        where id = v_attempt.id;
      v_dead := v_dead + 1;
    end if;

    update public.webhook_logs set
      response_status = v_attempt.status_code,
      response_body = left(v_attempt.content, 8192),
      completed_at = coalesce(v_attempt.answered_at, v_now)
      where id = v_attempt.id;
  end loop;

  -- 2. Retries that are due: same webhook-id and body, fresh timestamp and signature.
  for v_attempt in
    select l.* from public.webhook_logs l
    where l.status = 'retry_scheduled' and l.next_attempt_at <= v_now
    order by l.next_attempt_at
    for update of l skip locked
  loop
    select * into v_config from public.webhook_configs where id = v_attempt.webhook_config_id;
    if v_config.id is null or not v_config.is_active or v_config.secret is null then
      update public.webhook_logs set
        status = 'dead',
        error_message = v_attempt.error_message || '; not retried: the webhook is gone, inactive or unsigned'
        where id = v_attempt.id;
      v_dead := v_dead + 1;
    else
      perform public.webhook_send_attempt(v_config, v_attempt.webhook_id, v_attempt.event_type,
        v_attempt.payload, v_attempt.attempt_count + 1, v_attempt.retries_remaining - 1);
      update public.webhook_logs set status = 'retried' where id = v_attempt.id;
      v_resent := v_resent + 1;
    end if;
  end loop;

  return jsonb_build_object('collected', v_collected, 'succeeded', v_succeeded,
    'retry_scheduled', v_retry_scheduled, 'dead', v_dead, 'resent', v_resent);
end;
$$;

-- Replays a dead-lettered delivery: a new attempt with the same webhook-id and body, and a fresh
-- retry budget. Returns the new attempt's webhook_logs id.
create or replace function public.replay_webhook(p_webhook_id text)
returns bigint
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_last public.webhook_logs;
  v_config public.webhook_configs;
  v_log_id bigint;
begin
  select * into v_last from public.webhook_logs
    where webhook_id = p_webhook_id
    order by attempt_count desc, id desc limit 1
    for update;
  if v_last.id is null then
    raise exception 'no delivery with webhook-id %', p_webhook_id using errcode = 'P0002';
  end if;
  if v_last.status <> 'dead' then
    raise exception 'delivery % is %, only dead-lettered deliveries can be replayed',
      p_webhook_id, v_last.status using errcode = '55000';
  end if;
  select * into v_config from public.webhook_configs where id = v_last.webhook_config_id;
  if v_config.id is null or not v_config.is_active or v_config.secret is null then
    raise exception 'webhook % is gone, inactive or unsigned; fix it before replaying',
      coalesce(v_last.webhook_name, '?') using errcode = '55000';
  end if;

  v_log_id := public.webhook_send_attempt(v_config, v_last.webhook_id, v_last.event_type,
    v_last.payload, v_last.attempt_count + 1, public.webhook_max_retries(v_config.retry_config));
  update public.webhook_logs set status = 'replayed' where id = v_last.id;
  return v_log_id;
end;
$$;

-- Replays every dead-lettered delivery of one webhook (or of all), oldest first.
create or replace function public.replay_dead_webhooks(p_webhook_name text default null)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_webhook_id text;
  v_count integer := 0;
begin
  for v_webhook_id in
    select l.webhook_id from public.webhook_logs l
    join public.webhook_configs c on c.id = l.webhook_config_id
    where l.status = 'dead' and c.is_active and c.secret is not null
      and (p_webhook_name is null or c.name = p_webhook_name)
      and not exists (select 1 from public.webhook_logs later
        where later.webhook_id = l.webhook_id and later.attempt_count > l.attempt_count)
    order by l.created_at
  loop
    perform public.replay_webhook(v_webhook_id);
    v_count := v_count + 1;
  end loop;
  return v_count;
end;
$$;

-- Delivery statistics per webhook over the last p_days days.
create or replace function public.get_webhook_stats(
  p_webhook_name text default null,
  p_days integer default 7)
returns table (
  webhook_name text,
  deliveries bigint,
  attempts bigint,
  succeeded bigint,
  pending bigint,
  dead bigint,
  skipped bigint,
  avg_response_time interval,
  events jsonb)
language sql
stable
security definer
set search_path = ''
as $$
  with recent as (
    select l.* from public.webhook_logs l
    where l.created_at > now() - make_interval(days => p_days)
  ),
  latest as (
    select distinct on (r.webhook_id) r.* from recent r
    order by r.webhook_id, r.attempt_count desc, r.id desc
  )
  select
    c.name,
    (select count(*) from latest l where l.webhook_config_id = c.id and l.status <> 'skipped'),
    (select count(*) from recent r where r.webhook_config_id = c.id and r.status <> 'skipped'),
    (select count(*) from latest l where l.webhook_config_id = c.id and l.status = 'succeeded'),
    (select count(*) from latest l where l.webhook_config_id = c.id
       and l.status in ('sent', 'retry_scheduled')),
    (select count(*) from latest l where l.webhook_config_id = c.id and l.status = 'dead'),
    (select count(*) from latest l where l.webhook_config_id = c.id and l.status = 'skipped'),
    (select avg(r.completed_at - r.created_at) from recent r
       where r.webhook_config_id = c.id and r.response_status is not null),
    coalesce((select jsonb_object_agg(e.event_type, e.n) from (
       select l.event_type, count(*) as n from latest l
       where l.webhook_config_id = c.id group by l.event_type) e), '{}')
  from public.webhook_configs c
  where p_webhook_name is null or c.name = p_webhook_name
  order by c.name;
$$;

-- None of this is for end users: only service_role (and the database owner) may call it.
revoke execute on function
  public.webhook_signature(text, text, bigint, text),
  public.webhook_legacy_signature(text, text),
  public.webhook_response_is_retryable(integer, boolean, text),
  public.webhook_retry_delay(jsonb, integer, text),
  public.webhook_send_attempt(public.webhook_configs, text, text, jsonb, integer, integer),
  public.deliver_webhook(text, text, jsonb, integer, boolean),
  public.new_webhook_id(),
  public.webhook_max_retries(jsonb),
  public.send_webhook_with_retry(text, text, jsonb, integer),
  public.dispatch_webhook_event(text, jsonb),
  public.test_webhook(text, jsonb),
  public.process_webhook_responses(interval),
  public.replay_webhook(text),
  public.replay_dead_webhooks(text),
  public.get_webhook_stats(text, integer)
  from public, anon, authenticated;
grant execute on function
  public.send_webhook_with_retry(text, text, jsonb, integer),
  public.dispatch_webhook_event(text, jsonb),
  public.test_webhook(text, jsonb),
  public.process_webhook_responses(interval),
  public.replay_webhook(text),
  public.replay_dead_webhooks(text),
  public.get_webhook_stats(text, integer)
  to service_role;
