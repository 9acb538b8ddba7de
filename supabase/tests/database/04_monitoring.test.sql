-- verify_extensions() and verify_automation_setup() report every component; the job and
-- webhook functions answer; only service_role may call them.
begin;
create extension if not exists pgtap with schema extensions;
\ir helpers.psql

select plan(17);

select set_eq($$select extension_name from public.verify_extensions()$$,
  array['uuid-ossp', 'pgcrypto', 'vector', 'pg_cron', 'pg_net', 'pg_stat_statements', 'btree_gist'],
  'verify_extensions reports every extension');
select is_empty($$select * from public.verify_extensions() where status <> 'ok'$$,
  'and every one is ok here');

select set_eq($$select component from public.verify_automation_setup()$$,
  array['extension:uuid-ossp', 'extension:pgcrypto', 'extension:vector', 'extension:pg_cron',
    'extension:pg_net', 'extension:pg_stat_statements', 'extension:btree_gist', 'realtime',
    'table:notifications', 'table:system_metrics', 'table:webhook_configs', 'table:webhook_logs',
    'table:webhook_receipts', 'table:event_catalog', 'table:memories',
    'trigger:trip_collaborators.webhook_trip_collaborator_added',
    'trigger:trip_collaborators.webhook_trip_collaborator_updated',
    'trigger:trip_collaborators.webhook_trip_collaborator_removed',
    'trigger:chat_messages.webhook_chat_messages_inserted', 'function:sync_to_calendar',
    'trigger:flights.webhook_booking_status_inserted', 'trigger:flights.webhook_booking_status_changed',
    'trigger:accommodations.webhook_booking_status_inserted',
    'trigger:accommodations.webhook_booking_status_changed',
    'trigger:memories.webhook_memories_inserted', 'trigger:memories.webhook_memories_updated',
    'cron:process-webhook-responses', 'cron:generate-memory-embeddings', 'cron:process-chat-messages',
    'cron:monitor-database-health',
    'cron:update-table-statistics', 'cron:cleanup-expired-search-cache', 'cron:cleanup-delivery-history',
    'cron:cleanup-old-session-memories', 'cron:archive-old-completed-trips', 'cron:vacuum-tables',
    'cron:monitor-expiring-api-keys',
    'webhook_event:trip.collaborator.added', 'webhook_event:trip.collaborator.updated',
    'webhook_event:trip.collaborator.removed', 'webhook_event:booking.confirmed',
    'webhook_event:booking.flights.cancelled', 'webhook_event:booking.accommodations.cancelled',
    'webhook_event:calendar.sync.request', 'webhook_event:chat.message.process',
    'webhook_event:memory.generate.embedding'],
  'verify_automation_setup reports every component');
select is_empty($$select * from public.verify_automation_setup() where status <> 'ok'$$,
  'and with the seed applied every one is ok');

-- It notices what is missing.
select cron.unschedule('vacuum-tables');
alter table public.flights disable trigger webhook_booking_status_changed;
drop trigger webhook_memories_updated on public.memories;
alter publication supabase_realtime drop table public.chat_tool_calls;
update public.webhook_configs set is_active = false where name = 'ai_processing';
select set_eq(
  $$select component || ' ' || status || ': ' || details from public.verify_automation_setup()
    where status <> 'ok'$$,
  array['cron:vacuum-tables missing: job is not scheduled',
        'trigger:flights.webhook_booking_status_changed warning: trigger is disabled',
        'trigger:memories.webhook_memories_updated missing: trigger does not exist',
        'realtime warning: tables not published: chat_tool_calls',
        'webhook_event:chat.message.process missing: no active, signed webhook is subscribed',
        'webhook_event:memory.generate.embedding missing: no active, signed webhook is subscribed'],
  'verify_automation_setup names what is missing or off');

select set_has($$select jobname from public.list_scheduled_jobs()$$,
  $$values ('process-webhook-responses'), ('generate-memory-embeddings'), ('monitor-database-health')$$,
  'list_scheduled_jobs lists the jobs');
select is((select schedule from public.list_scheduled_jobs() where jobname = 'process-webhook-responses'),
  '1 seconds', 'the delivery collector runs every second');
select lives_ok($$select * from public.get_job_history('process-webhook-responses', 5)$$,
  'get_job_history answers for a job');
select lives_ok($$select * from public.get_job_history()$$, 'get_job_history answers for all jobs');
select is((select count(*) from public.get_webhook_stats()), 2::bigint,
  'get_webhook_stats has a row per webhook');

select pg_temp.act_as(pg_temp.create_user('curious@example.com'));
select throws_ok($$select * from public.verify_extensions()$$, '42501', null,
  'a signed-in user cannot call verify_extensions');
select throws_ok($$select * from public.verify_automation_setup()$$, '42501', null,
  'nor verify_automation_setup');
select throws_ok($$select * from public.list_scheduled_jobs()$$, '42501', null, 'nor list_scheduled_jobs');
select throws_ok($$select * from public.get_webhook_stats()$$, '42501', null, 'nor get_webhook_stats');
select pg_temp.act_as_anon();
select throws_ok($$select * from public.get_job_history()$$, '42501', null, 'anon cannot read job history');
select pg_temp.act_as_service_role();
select isnt_empty($$select * from public.verify_automation_setup()$$, 'service_role can');
select isnt_empty($$select * from public.list_scheduled_jobs()$$, 'and list the jobs');
select pg_temp.act_as_owner();

select * from finish();
rollback;
