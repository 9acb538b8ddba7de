-- The schema is all there: tables with row level security, extensions, indexes, realtime.
begin;
create extension if not exists pgtap with schema extensions;

select plan(31);

select tables_are('public', array[
  'trips', 'trip_collaborators', 'itinerary_items', 'flights', 'accommodations', 'transportation',
  'chat_sessions', 'chat_messages', 'chat_tool_calls', 'api_keys', 'memories', 'session_memories',
  'notifications', 'system_metrics', 'search_destinations', 'search_activities', 'search_flights',
  'search_hotels', 'webhook_configs', 'webhook_logs', 'webhook_receipts', 'event_catalog', 'chat_model_calls'],
  'public has exactly the TripSage tables');

select ok(c.relrowsecurity, format('row level security is enabled on %s', c.relname))
from pg_class c
where c.relnamespace = 'public'::regnamespace and c.relkind = 'r'
order by c.relname;

select is(
  (select array_agg(extname::text order by extname) from pg_extension
   where extname in ('uuid-ossp', 'pgcrypto', 'pg_stat_statements', 'btree_gist', 'vector',
                     'pg_cron', 'pg_net')),
  array['btree_gist', 'pg_cron', 'pg_net', 'pg_stat_statements', 'pgcrypto', 'uuid-ossp', 'vector'],
  'every extension TripSage needs is installed');

select matches(
  (select pg_get_indexdef(indexrelid) from pg_index
   where indexrelid = 'public.memories_embedding_hnsw_idx'::regclass),
  '^CREATE INDEX memories_embedding_hnsw_idx ON public\.memories USING hnsw \(embedding (extensions\.)?vector_cosine_ops\) WITH \(m=''16'', ef_construction=''64''\)$',
  'memories.embedding has an HNSW cosine index with m 16, ef_construction 64');

select col_type_is('public', 'memories', 'embedding', 'extensions', 'vector(1536)',
  'memories.embedding holds 1536 dimensions');

select fk_ok('public', 'trips', 'user_id', 'auth', 'users', 'id');
select fk_ok('public', 'memories', 'user_id', 'auth', 'users', 'id');

select set_eq(
  $$select tablename::text from pg_publication_tables
    where pubname = 'supabase_realtime' and schemaname = 'public'$$,
  array['trips', 'trip_collaborators', 'itinerary_items', 'chat_sessions', 'chat_messages',
        'chat_tool_calls'],
  'the realtime publication carries the collaborative tables');

select lives_ok(
  $$insert into auth.users (id, email) values ('00000000-0000-4000-8000-0000000000aa', 'a@example.com');
    insert into public.trips (user_id, name, start_date, end_date, destination, status)
    values ('00000000-0000-4000-8000-0000000000aa', 'Old trip', '2020-01-01', '2020-01-02', 'Porto', 'archived')$$,
  '''archived'' is a valid trip status');

select * from finish();
rollback;
