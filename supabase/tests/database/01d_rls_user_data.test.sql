-- Row level security on per-user data (API keys, memories, session memories, notifications,
-- search caches), on the backend-only tables (system_metrics, webhook_configs, webhook_logs), and
-- the user RPCs that run with the caller's rights. Alice and Bob each own rows; neither may see or
-- touch the other's. Mallory owns nothing and tries updates and deletes without a WHERE clause, so
-- that only the UPDATE/DELETE policy (not the SELECT one) stands in the way.
begin;
create extension if not exists pgtap with schema extensions;
\ir helpers.psql

select plan(112);

select pg_temp.create_user('alice@example.com') as alice \gset
select pg_temp.create_user('bob@example.com') as bob \gset
select pg_temp.create_user('mallory@example.com') as mallory \gset

-- api_keys ---------------------------------------------------------------------------------------

\set add_key 'insert into public.api_keys (user_id, service_name, key_name, encrypted_key, key_hash) values (%L, %L, %L, ''enc'', ''hash'')'

insert into public.api_keys (user_id, service_name, key_name, encrypted_key, key_hash)
values (:'alice', 'openai', 'default', 'enc-alice', 'hash-alice') returning id as alice_key \gset
insert into public.api_keys (user_id, service_name, key_name, encrypted_key, key_hash)
values (:'bob', 'openai', 'default', 'enc-bob', 'hash-bob') returning id as bob_key \gset

select pg_temp.act_as(:'alice');
select results_eq('select id from public.api_keys', array[:alice_key]::bigint[], 'a user sees only their own API keys');
select lives_ok(format(:'add_key', :'alice', 'duffel', 'default'), 'a user adds an API key of their own');
select throws_ok(format(:'add_key', :'bob', 'duffel', 'planted'), '42501', null,
  'a user cannot add an API key for someone else');
update public.api_keys set key_name = 'renamed' where id = :alice_key;
update public.api_keys set key_name = 'stolen' where id = :bob_key;
select throws_ok(format('update public.api_keys set user_id = %L where id = %s', :'bob', :alice_key), '42501', null,
  'a user cannot give their API key to someone else');
delete from public.api_keys where id = :bob_key;
select pg_temp.act_as_owner();
select is((select key_name from public.api_keys where id = :alice_key), 'renamed', 'a user changes their own API key');
select is((select key_name from public.api_keys where id = :bob_key), 'default',
  'a user cannot change someone else''s API key');
select results_eq(format('select count(*) from public.api_keys where id = %s', :bob_key), array[1::bigint],
  'a user cannot delete someone else''s API key');
select pg_temp.act_as(:'alice');
delete from public.api_keys where service_name = 'duffel';
select pg_temp.act_as_owner();
select is_empty($$select id from public.api_keys where service_name = 'duffel'$$, 'a user deletes their own API key');

select pg_temp.act_as(:'mallory');
update public.api_keys set key_name = 'mallory';
delete from public.api_keys;
select pg_temp.act_as_owner();
select results_eq(format($$select key_name from public.api_keys where id in (%s, %s) order by id$$, :alice_key, :bob_key),
  array['renamed', 'default'], 'a user can neither change nor delete API keys of others, even without a WHERE');

select pg_temp.act_as_anon();
select is_empty('select id from public.api_keys', 'anon sees no API keys');
select throws_ok(format(:'add_key', :'alice', 'anon', 'default'), '42501', null, 'anon cannot add an API key');
update public.api_keys set key_name = 'anon';
delete from public.api_keys;
select pg_temp.act_as_owner();
select results_eq(format($$select key_name from public.api_keys where id in (%s, %s) order by id$$, :alice_key, :bob_key),
  array['renamed', 'default'], 'anon can neither change nor delete API keys');
select pg_temp.act_as_service_role();
select results_eq(format('select count(*) from public.api_keys where id in (%s, %s)', :alice_key, :bob_key),
  array[2::bigint], 'service_role sees every API key');
select lives_ok(format(:'add_key', :'bob', 'backend', 'default'), 'service_role adds an API key for any user');

-- rotate_user_api_key ----------------------------------------------------------------------------

select pg_temp.act_as(:'alice');
select is((select encrypted_key || ' ' || key_hash || ' ' || (metadata ? 'rotated_at')::text
           from public.rotate_user_api_key(:alice_key, 'enc-alice-2', 'hash-alice-2')),
  'enc-alice-2 hash-alice-2 true', 'rotate_user_api_key rotates the caller''s own key');
select throws_ok(format($$select public.rotate_user_api_key(%s, 'enc-evil', 'hash-evil')$$, :bob_key), 'P0002',
  format('API key %s not found', :bob_key), 'rotate_user_api_key cannot see someone else''s key');
select pg_temp.act_as_anon();
select throws_ok(format($$select public.rotate_user_api_key(%s, 'enc-anon', 'hash-anon')$$, :alice_key), '42501',
  'permission denied for function rotate_user_api_key',
  'anon cannot execute rotate_user_api_key');
select pg_temp.act_as_owner();
select results_eq(format('select key_hash from public.api_keys where id in (%s, %s) order by id', :alice_key, :bob_key),
  array['hash-alice-2', 'hash-bob'], 'only the caller''s own key was rotated');

-- memories ---------------------------------------------------------------------------------------

\set remember 'insert into public.memories (user_id, content) values (%L, %L)'

insert into public.memories (user_id, content) values (:'alice', 'Alice likes ryokans') returning id as alice_memory \gset
insert into public.memories (user_id, content) values (:'bob', 'Bob likes hostels') returning id as bob_memory \gset

select pg_temp.act_as(:'alice');
select results_eq('select id from public.memories', array[:alice_memory]::bigint[], 'a user sees only their own memories');
select lives_ok(format(:'remember', :'alice', 'Alice is vegetarian'), 'a user adds a memory of their own');
select throws_ok(format(:'remember', :'bob', 'Bob hates trains'), '42501', null,
  'a user cannot add a memory for someone else');
update public.memories set content = 'Alice loves ryokans' where id = :alice_memory;
update public.memories set content = 'Bob hates hostels' where id = :bob_memory;
select throws_ok(format('update public.memories set user_id = %L where id = %s', :'bob', :alice_memory), '42501', null,
  'a user cannot give their memory to someone else');
delete from public.memories where id = :bob_memory;
delete from public.memories where content = 'Alice is vegetarian';
select pg_temp.act_as_owner();
select results_eq(format('select content from public.memories where user_id in (%L, %L) order by id', :'alice', :'bob'),
  array['Alice loves ryokans', 'Bob likes hostels'],
  'a user changes and deletes their own memories, and cannot change or delete someone else''s');

select pg_temp.act_as(:'mallory');
update public.memories set content = 'mallory';
delete from public.memories;
select pg_temp.act_as_owner();
select results_eq(format('select content from public.memories where user_id in (%L, %L) order by id', :'alice', :'bob'),
  array['Alice loves ryokans', 'Bob likes hostels'],
  'a user can neither change nor delete memories of others, even without a WHERE');

select pg_temp.act_as_anon();
select is_empty('select id from public.memories', 'anon sees no memories');
select throws_ok(format(:'remember', :'alice', 'From anon'), '42501', null, 'anon cannot add a memory');
update public.memories set content = 'anon';
delete from public.memories;
select pg_temp.act_as_owner();
select results_eq(format('select content from public.memories where user_id in (%L, %L) order by id', :'alice', :'bob'),
  array['Alice loves ryokans', 'Bob likes hostels'], 'anon can neither change nor delete memories');
select pg_temp.act_as_service_role();
select results_eq(format('select count(*) from public.memories where user_id in (%L, %L)', :'alice', :'bob'),
  array[2::bigint], 'service_role sees every memory');

-- session_memories -------------------------------------------------------------------------------

\set session_memory 'insert into public.session_memories (session_id, user_id, content) values (%L, %L, %L)'

insert into public.chat_sessions (user_id) values (:'alice') returning id as alice_session \gset
insert into public.chat_sessions (user_id) values (:'bob') returning id as bob_session \gset
insert into public.session_memories (session_id, user_id, content)
values (:'alice_session', :'alice', 'Alice asked about Kyoto'), (:'alice_session', :'alice', 'Alice asked about Nara'),
       (:'bob_session', :'bob', 'Bob asked about Lisbon');

select pg_temp.act_as(:'alice');
select results_eq('select content from public.session_memories order by id',
  array['Alice asked about Kyoto', 'Alice asked about Nara'], 'a user reads only their own session memories');
select throws_ok(format(:'session_memory', :'alice_session', :'alice', 'Planted'), '42501', null,
  'a user cannot write a session memory, even their own');
update public.session_memories set content = 'Edited';
delete from public.session_memories where content = 'Alice asked about Nara';
delete from public.session_memories where content = 'Bob asked about Lisbon';
select pg_temp.act_as_owner();
select results_eq(format('select content from public.session_memories where user_id in (%L, %L) order by id', :'alice', :'bob'),
  array['Alice asked about Kyoto', 'Bob asked about Lisbon'],
  'a user deletes their own session memory, cannot delete someone else''s, and cannot edit any');
select pg_temp.act_as(:'mallory');
update public.session_memories set content = 'mallory';
delete from public.session_memories;
select pg_temp.act_as_owner();
select results_eq(format('select content from public.session_memories where user_id in (%L, %L) order by id', :'alice', :'bob'),
  array['Alice asked about Kyoto', 'Bob asked about Lisbon'],
  'a user can neither change nor delete session memories of others, even without a WHERE');

select pg_temp.act_as_anon();
select is_empty('select id from public.session_memories', 'anon reads no session memories');
select throws_ok(format(:'session_memory', :'alice_session', :'alice', 'From anon'), '42501', null,
  'anon cannot write a session memory');
delete from public.session_memories;
select pg_temp.act_as_owner();
select results_eq(format('select count(*) from public.session_memories where user_id in (%L, %L)', :'alice', :'bob'),
  array[2::bigint], 'anon cannot delete session memories');
select pg_temp.act_as_service_role();
select lives_ok(format(:'session_memory', :'bob_session', :'bob', 'Written by the backend'),
  'service_role writes a session memory');
select results_eq(format('select count(*) from public.session_memories where user_id in (%L, %L)', :'alice', :'bob'),
  array[3::bigint], 'service_role reads every session memory');

-- notifications ----------------------------------------------------------------------------------

\set notify 'insert into public.notifications (user_id, type, title, message) values (%L, ''info'', %L, ''Hello'')'

insert into public.notifications (user_id, type, title, message)
values (:'alice', 'trip', 'Trip shared', 'Bob shared a trip') returning id as alice_note \gset
insert into public.notifications (user_id, type, title, message)
values (:'alice', 'booking', 'Flight booked', 'LIS to KIX') returning id as alice_note2 \gset
insert into public.notifications (user_id, type, title, message)
values (:'alice', 'booking', 'Hotel booked', 'Ryokan Sawaya') returning id as alice_note3 \gset
insert into public.notifications (user_id, type, title, message)
values (:'bob', 'trip', 'Welcome', 'Hi Bob') returning id as bob_note \gset
insert into public.notifications (user_id, type, title, message)
values (:'bob', 'trip', 'Reminder', 'Pack') returning id as bob_note2 \gset

\set note_state 'select id::text || '' '' || title || '' '' || read::text from public.notifications where id = %s'

select pg_temp.act_as(:'alice');
select results_eq('select id from public.notifications order by id', array[:alice_note, :alice_note2, :alice_note3]::bigint[],
  'a user reads only their own notifications');
select throws_ok(format(:'notify', :'alice', 'Self-made'), '42501', null,
  'a user cannot create a notification, even for themselves');
update public.notifications set read = true where id = :alice_note;
update public.notifications set read = true where id = :bob_note;
select throws_ok(format($$update public.notifications set title = 'Edited' where id = %s$$, :alice_note), '42501', null,
  'a user cannot change the title of their own notification');
select throws_ok(format('update public.notifications set user_id = %L where id = %s', :'bob', :alice_note), '42501', null,
  'a user cannot give their notification to someone else');
delete from public.notifications where id = :bob_note;
select pg_temp.act_as_owner();
select is((select title || ' ' || read::text from public.notifications where id = :alice_note), 'Trip shared true',
  'a user marks their own notification read');
select is((select title || ' ' || read::text from public.notifications where id = :bob_note), 'Welcome false',
  'a user can neither mark nor delete someone else''s notification');
select pg_temp.act_as(:'alice');
delete from public.notifications where id = :alice_note;
select pg_temp.act_as_owner();
select is_empty(format('select id from public.notifications where id = %s', :alice_note),
  'a user deletes their own notification');

select pg_temp.act_as(:'mallory');
update public.notifications set read = true;
delete from public.notifications;
select pg_temp.act_as_owner();
select results_eq(format('select title || '' '' || read::text from public.notifications where user_id in (%L, %L) order by id', :'alice', :'bob'),
  array['Flight booked false', 'Hotel booked false', 'Welcome false', 'Reminder false'],
  'a user can neither mark nor delete notifications of others, even without a WHERE');

select pg_temp.act_as_anon();
select is_empty('select id from public.notifications', 'anon reads no notifications');
select throws_ok(format(:'notify', :'alice', 'From anon'), '42501', null, 'anon cannot create a notification');
select throws_ok('update public.notifications set read = true', '42501', null, 'anon cannot mark notifications read');
delete from public.notifications;
select pg_temp.act_as_owner();
select results_eq(format('select count(*) from public.notifications where user_id in (%L, %L)', :'alice', :'bob'),
  array[4::bigint], 'anon cannot delete notifications');
select pg_temp.act_as_service_role();
select lives_ok(format(:'notify', :'bob', 'From the backend'), 'service_role creates a notification');
select results_eq(format('select count(*) from public.notifications where user_id in (%L, %L)', :'alice', :'bob'),
  array[5::bigint], 'service_role reads every notification');

-- get_unread_notification_count / mark_notifications_read ----------------------------------------

-- Alice now has 2 unread notifications, Bob 3.
select pg_temp.act_as(:'alice');
select is(public.get_unread_notification_count(), 2::bigint,
  'get_unread_notification_count counts only the caller''s unread notifications');
select is(public.mark_notifications_read(array[:bob_note, :bob_note2]::bigint[]), 0,
  'mark_notifications_read with someone else''s ids marks nothing');
select is(public.mark_notifications_read(array[:alice_note2]::bigint[]), 1,
  'mark_notifications_read marks the given notification of the caller');
select is(public.mark_notifications_read(), 1, 'mark_notifications_read() marks the rest of the caller''s');
select is(public.get_unread_notification_count(), 0::bigint, 'after which the caller has none unread');
select pg_temp.act_as_owner();
select results_eq(format('select count(*) from public.notifications where user_id = %L and not read', :'bob'),
  array[3::bigint], 'and someone else''s notifications are still unread');
select pg_temp.act_as(:'bob');
select is(public.get_unread_notification_count(), 3::bigint, 'as that user''s own count says');
select pg_temp.act_as_anon();
select throws_ok('select public.get_unread_notification_count()', '42501',
  'permission denied for function get_unread_notification_count',
  'anon cannot execute get_unread_notification_count');
select throws_ok('select public.mark_notifications_read()', '42501',
  'permission denied for function mark_notifications_read',
  'anon cannot execute mark_notifications_read');
select pg_temp.act_as_owner();
select results_eq(format('select count(*) from public.notifications where user_id = %L and not read', :'bob'),
  array[3::bigint], 'nothing was marked by anon');

-- system_metrics ---------------------------------------------------------------------------------

\set record_metric 'insert into public.system_metrics (metric_type, metric_name, value) values (''test'', ''rls'', 1)'

insert into public.system_metrics (metric_type, metric_name, value) values ('test', 'rls', 42);
select pg_temp.act_as(:'alice');
select throws_ok('select id from public.system_metrics', '42501', null, 'a user cannot read system metrics');
select throws_ok(:'record_metric', '42501', null, 'a user cannot record a system metric');
select throws_ok('delete from public.system_metrics', '42501', null, 'a user cannot delete system metrics');
select pg_temp.act_as_anon();
select throws_ok('select id from public.system_metrics', '42501', null, 'anon cannot read system metrics');
select throws_ok(:'record_metric', '42501', null, 'anon cannot record a system metric');
select pg_temp.act_as_service_role();
select results_eq($$select value from public.system_metrics where metric_type = 'test'$$, array[42::numeric],
  'service_role reads system metrics');
select lives_ok(:'record_metric', 'service_role records a system metric');

-- search caches ----------------------------------------------------------------------------------

-- Every policy of one search cache table. Returns 9 TAP lines.
create function pg_temp.check_search_cache(p_table text, p_alice uuid, p_bob uuid, p_mallory uuid)
returns setof text
language plpgsql
as $$
declare
  v_what text := replace(p_table, '_', ' ');
  v_insert text := format(
    'insert into public.%I (user_id, query, query_hash, results, source) values (%%L, %%L, md5(%%2$L), ''[]'', ''test'')',
    p_table);
  v_state text := format('select query from public.%I where user_id in (%L, %L) order by id', p_table, p_alice, p_bob);
begin
  perform pg_temp.act_as_owner();
  execute format(v_insert, p_alice, 'alice: kyoto');
  execute format(v_insert, p_bob, 'bob: lisbon');

  perform pg_temp.act_as(p_alice);
  return next results_eq(format('select query from public.%I order by id', p_table), array['alice: kyoto'],
    format('a user sees only their own %s', v_what));
  return next lives_ok(format(v_insert, p_alice, 'alice: nara'), format('a user caches their own %s', v_what));
  return next throws_ok(format(v_insert, p_bob, 'alice for bob'), '42501', null,
    format('a user cannot cache %s for someone else', v_what));
  execute format('update public.%I set query = ''alice: osaka'' where query = ''alice: nara''', p_table);
  execute format('update public.%I set query = ''tampered'' where query = ''bob: lisbon''', p_table);
  execute format('delete from public.%I where query = ''alice: kyoto''', p_table);
  execute format('delete from public.%I where query = ''bob: lisbon''', p_table);
  perform pg_temp.act_as_owner();
  return next results_eq(v_state, array['bob: lisbon', 'alice: osaka'],
    format('a user changes and deletes their own %s, and cannot change or delete someone else''s', v_what));

  perform pg_temp.act_as(p_mallory);
  execute format('update public.%I set query = ''mallory''', p_table);
  execute format('delete from public.%I', p_table);
  perform pg_temp.act_as_owner();
  return next results_eq(v_state, array['bob: lisbon', 'alice: osaka'],
    format('a user can neither change nor delete %s of others, even without a WHERE', v_what));

  perform pg_temp.act_as_anon();
  return next is_empty(format('select id from public.%I', p_table), format('anon sees no %s', v_what));
  return next throws_ok(format(v_insert, p_alice, 'anon'), '42501', null, format('anon cannot cache %s', v_what));
  execute format('update public.%I set query = ''anon''', p_table);
  execute format('delete from public.%I', p_table);
  perform pg_temp.act_as_owner();
  return next results_eq(v_state, array['bob: lisbon', 'alice: osaka'],
    format('anon can neither change nor delete %s', v_what));

  perform pg_temp.act_as_service_role();
  return next results_eq(v_state, array['bob: lisbon', 'alice: osaka'], format('service_role sees all %s', v_what));
  perform pg_temp.act_as_owner();
end;
$$;

select * from pg_temp.check_search_cache('search_destinations', :'alice', :'bob', :'mallory');
select * from pg_temp.check_search_cache('search_activities', :'alice', :'bob', :'mallory');
select * from pg_temp.check_search_cache('search_flights', :'alice', :'bob', :'mallory');
select * from pg_temp.check_search_cache('search_hotels', :'alice', :'bob', :'mallory');

-- webhook_configs / webhook_logs: service_role only ----------------------------------------------

-- A chat message from Alice logs a webhook delivery.
insert into public.chat_messages (session_id, role, content) values (:'alice_session', 'user', 'Hello');

select pg_temp.act_as(:'alice');
select throws_ok('select id from public.webhook_configs', '42501', null, 'a user cannot read webhook configs');
select throws_ok($$insert into public.webhook_configs (name, url) values ('evil', 'https://evil.example')$$,
  '42501', null, 'a user cannot add a webhook config');
select throws_ok($$update public.webhook_configs set url = 'https://evil.example'$$,
  '42501', null, 'a user cannot change a webhook config');
select throws_ok('select id from public.webhook_logs', '42501', null, 'a user cannot read webhook logs');
select pg_temp.act_as_anon();
select throws_ok('select id from public.webhook_configs', '42501', null, 'anon cannot read webhook configs');
select throws_ok('select id from public.webhook_logs', '42501', null, 'anon cannot read webhook logs');
select pg_temp.act_as_service_role();
select results_eq($$select count(*) from public.webhook_configs where name in ('trip_events', 'ai_processing')$$,
  array[2::bigint], 'service_role reads webhook configs');
select results_eq($$select count(*) > 0 from public.webhook_logs where event_type = 'chat.message.process'$$,
  array[true], 'service_role reads webhook logs');

select * from finish();
rollback;
