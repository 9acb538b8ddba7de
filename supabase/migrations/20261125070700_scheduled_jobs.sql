-- pg_cron jobs. Schedules are in UTC (pg_cron's clock). Each job is scheduled here and nowhere
-- else; cron.schedule() replaces a job of the same name, so re-running this migration is harmless.

-- Every second: the collector is what marks a delivery done, so its cadence bounds how soon a
-- burst counts as delivered; a run with nothing to collect costs about a millisecond.
select cron.schedule('process-webhook-responses', '1 seconds',
  $$select public.process_webhook_responses()$$);

select cron.schedule('generate-memory-embeddings', '*/5 * * * *',
  $$select public.enqueue_memory_embeddings()$$);

select cron.schedule('process-chat-messages', '*/5 * * * *',
  $$select public.enqueue_chat_messages()$$);

select cron.schedule('monitor-database-health', '*/5 * * * *', $$
  insert into public.system_metrics (metric_type, metric_name, value, metadata)
  select 'database', 'active_connections', count(*),
         jsonb_build_object('by_state', coalesce(jsonb_object_agg(s.state, s.n), '{}'))
  from (
    select coalesce(state, 'unknown') as state, count(*) as n
    from pg_stat_activity
    where datname = current_database()
    group by 1
  ) s
$$);

select cron.schedule('update-table-statistics', '0 1 * * *', $$
  analyze public.trips, public.flights, public.accommodations, public.chat_messages,
    public.memories, public.search_destinations, public.search_activities,
    public.search_flights, public.search_hotels
$$);

select cron.schedule('cleanup-expired-search-cache', '0 2 * * *', $$
  delete from public.search_destinations where expires_at < now();
  delete from public.search_activities where expires_at < now();
  delete from public.search_flights where expires_at < now();
  delete from public.search_hotels where expires_at < now();
$$);

-- Finished deliveries and their receipts are kept 30 days; dead letters stay until replayed or removed by hand.
-- pg_cron's own run history grows by one row per run (the collector runs every few seconds).
select cron.schedule('cleanup-delivery-history', '30 2 * * *', $$
  delete from public.webhook_logs
  where status in ('succeeded', 'skipped', 'retried', 'replayed')
    and created_at < now() - interval '30 days';
  delete from public.webhook_receipts where received_at < now() - interval '30 days';
  delete from cron.job_run_details where end_time < now() - interval '7 days';
$$);

select cron.schedule('cleanup-old-session-memories', '0 3 * * *', $$
  delete from public.session_memories where created_at < now() - interval '30 days'
$$);

select cron.schedule('archive-old-completed-trips', '0 4 * * 0', $$
  update public.trips set status = 'archived'
  where status = 'completed' and updated_at < now() - interval '1 year'
$$);

-- One VACUUM statement (several tables), because VACUUM cannot run in a multi-statement command.
select cron.schedule('vacuum-tables', '0 5 * * 0', $$
  vacuum (analyze) public.trips, public.flights, public.accommodations, public.chat_messages,
    public.memories
$$);

select cron.schedule('monitor-expiring-api-keys', '0 9 * * *', $$
  insert into public.notifications (user_id, type, title, message, metadata)
  select k.user_id, 'api_key_expiring', 'API key expiring soon',
         format('Your %s API key "%s" expires on %s.', k.service_name, k.key_name,
                to_char(k.expires_at at time zone 'UTC', 'YYYY-MM-DD')),
         jsonb_build_object('api_key_id', k.id, 'service_name', k.service_name,
                            'key_name', k.key_name, 'expires_at', k.expires_at)
  from public.api_keys k
  where k.is_active
    and k.expires_at between now() and now() + interval '7 days'
    and not exists (
      select 1 from public.notifications n
      where n.user_id = k.user_id and n.type = 'api_key_expiring'
        and n.metadata ->> 'api_key_id' = k.id::text
        and n.created_at > now() - interval '7 days')
$$);
