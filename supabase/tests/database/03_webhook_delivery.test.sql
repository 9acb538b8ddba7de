-- Signing, retries, dead letters and replays of webhook deliveries.
begin;
create extension if not exists pgtap with schema extensions;
\ir helpers.psql

select plan(54);

insert into public.webhook_configs (name, url, secret, events, retry_config)
values ('test_hook', 'http://127.0.0.1:9/hook',
        'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', array['test.event'],
        '{"max_retries": 2, "retry_delay": 1000, "backoff_multiplier": 2, "max_delay": 60000}');

-- Pure pieces -----------------------------------------------------------------------------------

select is(
  public.webhook_signature('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
    'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330, '{"test": 2432232314}'),
  'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
  'the signature matches the Standard Webhooks test vector');
select is(
  public.webhook_signature(
    'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw whsec_dHJpcHNhZ2UtZWRnZS1sb2NhbC13ZWJob29rLXNlY3JldA==',
    'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330, '{"test": 2432232314}'),
  'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE= '
    || split_part(public.webhook_signature('whsec_dHJpcHNhZ2UtZWRnZS1sb2NhbC13ZWJob29rLXNlY3JldA==',
         'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330, '{"test": 2432232314}'), ' ', 1),
  'with two secrets (a rotation) both sign, in order');
select is(
  public.webhook_legacy_signature('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', '{"test": 2432232314}'),
  encode(extensions.hmac('{"test": 2432232314}'::bytea,
    decode('MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'base64'), 'sha256'), 'hex'),
  'the legacy signature is hex HMAC-SHA256 of the body under the decoded key');

select is(public.webhook_retry_delay('{"retry_delay": 1000, "backoff_multiplier": 2, "max_delay": 60000}', 1),
  interval '1 second', 'first retry waits retry_delay');
select is(public.webhook_retry_delay('{"retry_delay": 1000, "backoff_multiplier": 2, "max_delay": 60000}', 3),
  interval '4 seconds', 'the delay doubles per retry');
select is(public.webhook_retry_delay('{"retry_delay": 1000, "backoff_multiplier": 2, "max_delay": 60000}', 12),
  interval '60 seconds', 'the delay stops at max_delay');
select is(public.webhook_retry_delay('{"retry_delay": 1000, "backoff_multiplier": 2, "max_delay": 60000}', 1, '30'),
  interval '30 seconds', 'a longer Retry-After wins');
select is(public.webhook_retry_delay('{"retry_delay": 1000, "backoff_multiplier": 2, "max_delay": 60000}', 1, '86400'),
  interval '60 seconds', 'Retry-After is honoured up to max_delay');
select is(public.webhook_retry_delay('{"retry_delay": 1000, "backoff_multiplier": 2, "max_delay": 60000}', 1, 'soon'),
  interval '1 second', 'a Retry-After that is not seconds is ignored');

select ok(public.webhook_response_is_retryable(503, false, null), '503 is retried');
select ok(public.webhook_response_is_retryable(429, false, null), '429 is retried');
select ok(public.webhook_response_is_retryable(408, false, null), '408 is retried');
select ok(public.webhook_response_is_retryable(null, true, 'Timeout was reached'), 'a timeout is retried');
select ok(public.webhook_response_is_retryable(null, false, 'Couldn''t connect to server'),
  'a connection error is retried');
select ok(not public.webhook_response_is_retryable(401, false, null), '401 is not retried');
select ok(not public.webhook_response_is_retryable(422, false, null), '422 is not retried');

-- One delivery through two failures to the dead-letter queue, then a replay -----------------------

select public.send_webhook_with_retry('test_hook', 'test.event', '{"hello": "wörld"}') as log1 \gset
select webhook_id as wid from public.webhook_logs where id = :log1 \gset

select is((select status from public.webhook_logs where id = :log1), 'sent', 'the first attempt is sent');
select is((select (body ->> 'event') || '/' || (body ->> 'hello') from pg_temp.queued(:log1)),
  'test.event/wörld', 'the body carries the payload and its event');
select is((select headers ->> 'webhook-id' from pg_temp.queued(:log1)), :'wid',
  'the request carries the delivery''s webhook-id');
select is((select headers ->> 'webhook-signature' from pg_temp.queued(:log1)),
  (select public.webhook_signature('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', :'wid',
     (headers ->> 'webhook-timestamp')::bigint, body_text) from pg_temp.queued(:log1)),
  'the signature covers id, timestamp and the exact queued body');

select pg_temp.answer(:log1, 500);
select is((public.process_webhook_responses() ->> 'retry_scheduled')::int, 1, 'the collector sees the 500');
select is((select status || ' ' || response_status || ' ' || error_message
           from public.webhook_logs where id = :log1), 'retry_scheduled 500 HTTP 500',
  'a 500 schedules a retry and is recorded');
select ok((select next_attempt_at > completed_at from public.webhook_logs where id = :log1),
  'the retry is due later');

select is((public.process_webhook_responses() ->> 'resent')::int, 0, 'nothing is resent before it is due');
select pg_temp.make_due(:log1);
select is((public.process_webhook_responses() ->> 'resent')::int, 1, 'a due retry is resent');
select is((select status from public.webhook_logs where id = :log1), 'retried', 'the first attempt is retried');
select id as log2 from pg_temp.latest_attempt(:'wid') \gset
select is((select attempt_count from public.webhook_logs where id = :log2), 2, 'the second attempt is number 2');
select is((select headers ->> 'webhook-id' from pg_temp.queued(:log2)), :'wid', 'the retry keeps the webhook-id');
select is((select headers ->> 'X-Webhook-Attempt' from pg_temp.queued(:log2)), '2', 'and says it is attempt 2');
select is((select body_text from pg_temp.queued(:log2)), (select body_text from pg_temp.queued(:log1)),
  'and sends the same body');
select ok((select (q2.headers ->> 'webhook-timestamp')::bigint >= (q1.headers ->> 'webhook-timestamp')::bigint
           from pg_temp.queued(:log1) q1, pg_temp.queued(:log2) q2),
  'with a fresh timestamp');

select pg_temp.answer(:log2, null, '{}', true, 'Timeout of 10000 ms reached');
select public.process_webhook_responses();
select is((select status || ' ' || error_message from public.webhook_logs where id = :log2),
  'retry_scheduled Timeout of 10000 ms reached', 'a timeout schedules a retry');
select ok((select next_attempt_at - clock_timestamp() > interval '1.5 seconds' from public.webhook_logs where id = :log2),
  'the second retry waits longer (backoff)');
select pg_temp.make_due(:log2);
select public.process_webhook_responses();
select id as log3 from pg_temp.latest_attempt(:'wid') \gset

select pg_temp.answer(:log3, 503);
select is((public.process_webhook_responses() ->> 'dead')::int, 1, 'the third failure dead-letters');
select is((select status || ': ' || error_message from public.webhook_logs where id = :log3),
  'dead: HTTP 503 (no retries left after attempt 3)', 'after max_retries the delivery is dead');
select is((select count(*) from public.webhook_logs where webhook_id = :'wid'), 3::bigint,
  'three attempts in all: the first and max_retries retries');

select is(public.replay_webhook(:'wid'), (select id from pg_temp.latest_attempt(:'wid')),
  'a replay returns the new attempt');
select id as log4 from pg_temp.latest_attempt(:'wid') \gset
select is((select status from public.webhook_logs where id = :log3), 'replayed', 'the dead letter is marked replayed');
select is((select attempt_count || ' ' || status || ' ' || retries_remaining from public.webhook_logs where id = :log4),
  '4 sent 2', 'the replay is attempt 4 with a fresh retry budget');
select is((select headers ->> 'webhook-id' from pg_temp.queued(:log4)), :'wid', 'the replay keeps the webhook-id');
select pg_temp.answer(:log4, 200);
select is((public.process_webhook_responses() ->> 'succeeded')::int, 1, 'the replay succeeds');
select is((select status || ' ' || response_status from public.webhook_logs where id = :log4), 'succeeded 200',
  'and is recorded as succeeded');
select throws_ok(format('select public.replay_webhook(%L)', :'wid'), '55000', null,
  'a delivered webhook cannot be replayed');

-- Other outcomes ---------------------------------------------------------------------------------

select public.send_webhook_with_retry('test_hook', 'test.event', '{}') as denied \gset
select pg_temp.answer(:denied, 401);
select public.process_webhook_responses();
select is((select status || ': ' || error_message from public.webhook_logs where id = :denied),
  'dead: HTTP 401 (not retryable)', 'a 401 dead-letters at once');

select public.send_webhook_with_retry('test_hook', 'test.event', '{}') as limited \gset
select pg_temp.answer(:limited, 429, '{"retry-after": "30"}');
select public.process_webhook_responses();
select ok((select next_attempt_at - completed_at >= interval '30 seconds' from public.webhook_logs where id = :limited),
  '429 with Retry-After: 30 waits at least 30 seconds');

select public.send_webhook_with_retry('test_hook', 'test.event', '{}') as in_flight \gset
update public.webhook_logs set created_at = clock_timestamp() - interval '1 hour' where id = :in_flight;
select public.process_webhook_responses();
select is((select status from public.webhook_logs where id = :in_flight), 'sent',
  'a request still queued in pg_net is left alone, however old');
delete from net.http_request_queue where id = (select request_id from public.webhook_logs where id = :in_flight);
select public.process_webhook_responses();
select is((select status || ': ' || error_message from public.webhook_logs where id = :in_flight),
  'retry_scheduled: no answer was recorded for the request', 'a request pg_net lost is retried');

update public.webhook_configs set is_active = false where name = 'test_hook';
select pg_temp.make_due(:in_flight);
select public.process_webhook_responses();
select is((select status from public.webhook_logs where id = :in_flight), 'dead',
  'a retry for a webhook deactivated meanwhile is dead-lettered');
select throws_ok(format('select public.replay_webhook(%L)',
    (select webhook_id from public.webhook_logs where id = :in_flight)), '55000', null,
  'and cannot be replayed until the webhook is active again');
update public.webhook_configs set is_active = true where name = 'test_hook';
select is(public.replay_dead_webhooks('test_hook'), 2, 'replay_dead_webhooks replays every dead delivery of a webhook');

-- Statistics -------------------------------------------------------------------------------------

select results_eq(
  $$select deliveries, attempts, succeeded, pending, dead, events
    from public.get_webhook_stats('test_hook')$$,
  $$values (4::bigint, 9::bigint, 1::bigint, 3::bigint, 0::bigint, '{"test.event": 4}'::jsonb)$$,
  'get_webhook_stats counts deliveries by their latest attempt');

-- Only service_role may send or read -------------------------------------------------------------

select pg_temp.act_as(pg_temp.create_user('mallory@example.com'));
select throws_ok($$select public.send_webhook_with_retry('test_hook', 'test.event', '{}')$$, '42501', null,
  'a signed-in user cannot send webhooks');
select throws_ok($$select * from public.webhook_configs$$, '42501', null,
  'a signed-in user cannot read webhook secrets');
select pg_temp.act_as_service_role();
select is((select count(*) from public.webhook_configs where name = 'test_hook'), 1::bigint,
  'service_role reads webhook configs');
select pg_temp.act_as_owner();

select * from finish();
rollback;
