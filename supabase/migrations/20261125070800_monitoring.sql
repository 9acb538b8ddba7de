-- Realtime publication and the functions operators use to check the automation (SQL editor or
-- /rest/v1/rpc with the service-role key).

-- Hosted projects already have the publication; a fresh database may not.
do $$
declare
  t text;
begin
  if not exists (select 1 from pg_publication where pubname = 'supabase_realtime') then
    create publication supabase_realtime;
  end if;
  foreach t in array array['trips', 'trip_collaborators', 'itinerary_items', 'chat_sessions',
    'chat_messages', 'chat_tool_calls']
  loop
    if not exists (select 1 from pg_publication_tables
                   where pubname = 'supabase_realtime' and schemaname = 'public' and tablename = t) then
      execute format('alter publication supabase_realtime add table public.%I', t);
    end if;
  end loop;
end;
$$;

create or replace function public.list_scheduled_jobs()
returns table (
  jobid bigint,
  jobname text,
  schedule text,
  command text,
  database text,
  username text,
  active boolean)
language sql
stable
security definer
set search_path = ''
as $$
  select j.jobid, j.jobname, j.schedule, j.command, j.database, j.username, j.active
  from cron.job j
  order by j.jobid;
$$;

create or replace function public.get_job_history(
  job_name text default null,
  limit_rows integer default 100)
returns table (
  jobid bigint,
  job_name text,
  status text,
  return_message text,
  start_time timestamptz,
  end_time timestamptz,
  duration interval)
language sql
stable
security definer
set search_path = ''
as $$
  select d.jobid, j.jobname, d.status, d.return_message, d.start_time, d.end_time,
         d.end_time - d.start_time
  from cron.job_run_details d
  join cron.job j on j.jobid = d.jobid
  where get_job_history.job_name is null or j.jobname = get_job_history.job_name
  order by d.start_time desc nulls last
  limit greatest(limit_rows, 0);
$$;

-- One row per extension TripSage needs.
create or replace function public.verify_extensions()
returns table (
  extension_name text,
  status text,
  installed_version text,
  schema_name text,
  details text)
language sql
stable
security definer
set search_path = ''
as $$
  select r.name,
    case when e.extname is null then 'missing'
         when r.preload and not r.loaded then 'warning'
         else 'ok' end,
    e.extversion,
    n.nspname::text,
    case when e.extname is null then format('create extension %I (%s)', r.name, r.purpose)
         when r.preload and not r.loaded
           then format('%s is not loaded (shared_preload_libraries): %s will not work', r.name, r.purpose)
         else r.purpose end
  from (
    select v.name, v.purpose, v.preload, case v.name
        -- pg_cron's launcher is a background worker, visible to every role.
        when 'pg_cron' then exists (select 1 from pg_stat_activity where backend_type = 'pg_cron launcher')
        -- Roles that may not read shared_preload_libraries get no row here: then assume loaded.
        else coalesce((select v.name = any (string_to_array(replace(ps.setting, ' ', ''), ','))
                       from pg_settings ps where ps.name = 'shared_preload_libraries'), true)
      end as loaded
    from (values
      ('uuid-ossp', 'UUID generation', false),
      ('pgcrypto', 'HMAC signatures for webhooks', false),
      ('vector', 'memory embeddings and HNSW search', false),
      ('pg_cron', 'scheduled jobs', true),
      ('pg_net', 'webhook delivery over HTTP', false),
      ('pg_stat_statements', 'query statistics', true),
      ('btree_gist', 'GiST indexes over scalar columns', false)
    ) as v (name, purpose, preload)
  ) r
  left join pg_extension e on e.extname = r.name
  left join pg_namespace n on n.oid = e.extnamespace
  order by r.name;
$$;

-- One row per piece of the automation: extensions, realtime, tables, triggers, jobs, webhooks.
create or replace function public.verify_automation_setup()
returns table (
  component text,
  status text,
  details text)
language sql
stable
security definer
set search_path = ''
as $$
  -- Extensions
  select 'extension:' || x.extension_name, x.status, x.details
  from public.verify_extensions() x

  -- Realtime publication
  union all
  select 'realtime',
    case when p.pubname is null then 'missing'
         when cardinality(w.missing) > 0 then 'warning' else 'ok' end,
    case when p.pubname is null then 'publication supabase_realtime does not exist'
         when cardinality(w.missing) > 0 then 'tables not published: ' || array_to_string(w.missing, ', ')
         else 'publication supabase_realtime has ' || array_to_string(w.expected, ', ') end
  from (select array['trips', 'trip_collaborators', 'itinerary_items', 'chat_sessions',
                     'chat_messages', 'chat_tool_calls'] as expected) e
  cross join lateral (
    select e.expected, array(
      select t from unnest(e.expected) t
      where not exists (select 1 from pg_publication_tables pt
        where pt.pubname = 'supabase_realtime' and pt.schemaname = 'public' and pt.tablename = t)
    ) as missing) w
  left join pg_publication p on p.pubname = 'supabase_realtime'

  -- Tables the automation writes to, with RLS on
  union all
  select 'table:' || t.name,
    case when c.oid is null then 'missing' when not c.relrowsecurity then 'warning' else 'ok' end,
    case when c.oid is null then 'table does not exist'
         when not c.relrowsecurity then 'row level security is off'
         else 'exists, row level security on' end
  from unnest(array['notifications', 'system_metrics', 'webhook_configs', 'webhook_logs',
                    'webhook_receipts', 'event_catalog', 'memories']) as t (name)
  left join pg_class c on c.relname = t.name and c.relnamespace = 'public'::regnamespace

  -- What the event catalog says emits each event: triggers and functions
  union all
  select x.emitter,
    case when x.missing then 'missing' when x.disabled then 'warning' else 'ok' end,
    case when x.missing then split_part(x.emitter, ':', 1) || ' does not exist'
         when x.disabled then 'trigger is disabled'
         else 'emits ' || x.events end
  from (
    select e.emitter, string_agg(c.event_type, ', ' order by c.event_type) as events,
      case e.kind
        when 'trigger' then tr.oid is null
        when 'function' then not exists (select 1 from pg_proc p
          where p.pronamespace = 'public'::regnamespace and p.proname = e.target)
        else false
      end as missing,
      coalesce(tr.tgenabled = 'D', false) as disabled
    from public.event_catalog c
    cross join lateral unnest(c.emitted_by) as o (emitter)
    cross join lateral (select o.emitter, split_part(o.emitter, ':', 1) as kind,
                               split_part(o.emitter, ':', 2) as target) e
    -- `trigger:<table>.<name>`: one lookup says whether it exists and whether it is enabled
    left join pg_trigger tr on e.kind = 'trigger'
      and tr.tgrelid = to_regclass('public.' || quote_ident(split_part(e.target, '.', 1)))
      and tr.tgname = split_part(e.target, '.', 2)
    where e.kind <> 'cron'
    group by e.emitter, e.kind, e.target, tr.oid, tr.tgenabled
  ) x

  -- Scheduled jobs
  union all
  select 'cron:' || t.name,
    case when j.jobid is null then 'missing' when not j.active then 'warning' else 'ok' end,
    case when j.jobid is null then 'job is not scheduled'
         when not j.active then 'job is inactive'
         else j.schedule || ': ' || btrim(regexp_replace(j.command, '\s+', ' ', 'g')) end
  from unnest(array['process-webhook-responses', 'generate-memory-embeddings',
                    'process-chat-messages', 'monitor-database-health', 'update-table-statistics',
                    'cleanup-expired-search-cache', 'cleanup-delivery-history',
                    'cleanup-old-session-memories', 'archive-old-completed-trips',
                    'vacuum-tables', 'monitor-expiring-api-keys']) as t (name)
  left join cron.job j on j.jobname = t.name

  -- Webhooks the emitted events need: some active, signed webhook must take each one
  union all
  select 'webhook_event:' || t.event_type,
    case when w.name is null then 'missing' else 'ok' end,
    coalesce('delivered by ' || w.name, 'no active, signed webhook is subscribed')
  from public.event_catalog t
  left join lateral (
    select string_agg(c.name, ', ' order by c.name) as name
    from public.webhook_configs c
    where t.event_type = any (c.events) and c.is_active and c.secret is not null
  ) w on true
  where cardinality(t.emitted_by) > 0;
$$;

revoke execute on function
  public.list_scheduled_jobs(),
  public.get_job_history(text, integer),
  public.verify_extensions(),
  public.verify_automation_setup()
  from public, anon, authenticated;
grant execute on function
  public.list_scheduled_jobs(),
  public.get_job_history(text, integer),
  public.verify_extensions(),
  public.verify_automation_setup()
  to service_role;
