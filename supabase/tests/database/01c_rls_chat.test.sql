-- Row level security on chat: a session and its messages belong to the user who opened it (being a
-- member of the session's trip gives no access); a session may point only at a trip its user can
-- see; tool calls are read through the user's own sessions and written only by the backend.
begin;
create extension if not exists pgtap with schema extensions;
\ir helpers.psql

select plan(46);

select pg_temp.create_user('owner@example.com') as owner \gset
select pg_temp.create_user('viewer@example.com') as viewer \gset
select pg_temp.create_user('stranger@example.com') as stranger \gset

insert into public.trips (user_id, name, start_date, end_date, destination)
values (:'owner', 'Kyoto in spring', '2027-04-01', '2027-04-10', 'Kyoto, Japan')
returning id as trip \gset
insert into public.trips (user_id, name, start_date, end_date, destination)
values (:'stranger', 'Lisbon weekend', '2027-05-01', '2027-05-03', 'Lisbon, Portugal')
returning id as strangers_trip \gset
insert into public.trip_collaborators (trip_id, user_id, added_by, permission_level)
values (:trip, :'viewer', :'owner', 'view');

insert into public.chat_sessions (user_id, trip_id) values (:'owner', :trip) returning id as session \gset
insert into public.chat_messages (session_id, role, content)
values (:'session', 'user', 'Where should we stay?') returning id as question \gset
insert into public.chat_messages (session_id, role, content)
values (:'session', 'assistant', 'Try a ryokan in Gion') returning id as answer \gset
insert into public.chat_tool_calls (message_id, tool_id, tool_name, arguments)
values (:answer, 'call_1', 'search_hotels', '{"city": "Kyoto"}') returning id as tool_call \gset

-- chat_sessions: select --------------------------------------------------------------------------

select pg_temp.act_as(:'owner');
select results_eq('select id from public.chat_sessions', array[:'session'::uuid], 'a user sees their own chat session');
select pg_temp.act_as(:'viewer');
select is_empty('select id from public.chat_sessions',
  'a collaborator on the session''s trip does not see someone else''s chat session');
select pg_temp.act_as(:'stranger');
select is_empty('select id from public.chat_sessions', 'a stranger does not see someone else''s chat session');
select pg_temp.act_as_anon();
select is_empty('select id from public.chat_sessions', 'anon sees no chat sessions');
select pg_temp.act_as_service_role();
select results_eq(format('select id from public.chat_sessions where user_id = %L', :'owner'),
  array[:'session'::uuid], 'service_role sees every chat session');

-- chat_sessions: insert --------------------------------------------------------------------------

\set open_session 'insert into public.chat_sessions (user_id, trip_id, metadata) values (%L, %s, %L)'

select pg_temp.act_as(:'owner');
select lives_ok(format(:'open_session', :'owner', 'null', '{"by": "owner, no trip"}'),
  'a user opens a chat session of their own without a trip');
select lives_ok(format(:'open_session', :'owner', :trip, '{"by": "owner, own trip"}'),
  'a user opens a chat session about their own trip');
select throws_ok(format(:'open_session', :'owner', :strangers_trip, '{"by": "owner, stranger''s trip"}'),
  '42501', null, 'a user cannot open a chat session about a trip they cannot see');
select throws_ok(format(:'open_session', :'stranger', 'null', '{"by": "owner, for the stranger"}'),
  '42501', null, 'a user cannot open a chat session for someone else');
select pg_temp.act_as(:'viewer');
select lives_ok(format(:'open_session', :'viewer', :trip, '{"by": "viewer, shared trip"}'),
  'a view collaborator opens a chat session about the shared trip');
select pg_temp.act_as_anon();
select throws_ok(format(:'open_session', :'owner', 'null', '{"by": "anon"}'),
  '42501', null, 'anon cannot open a chat session');
select pg_temp.act_as_service_role();
select lives_ok(format(:'open_session', :'owner', :strangers_trip, '{"by": "service_role"}'),
  'service_role opens a chat session for any user about any trip');
select pg_temp.act_as_owner();
select results_eq($$select metadata ->> 'by' from public.chat_sessions where metadata ? 'by' order by 1$$,
  array['owner, no trip', 'owner, own trip', 'service_role', 'viewer, shared trip'],
  'exactly the allowed chat sessions were opened');

-- chat_sessions: update --------------------------------------------------------------------------

select pg_temp.act_as(:'owner');
update public.chat_sessions set metadata = '{"title": "Stays"}' where id = :'session';
select pg_temp.act_as_owner();
select is((select metadata ->> 'title' from public.chat_sessions where id = :'session'), 'Stays',
  'a user updates their own chat session');
select pg_temp.act_as(:'owner');
select throws_ok(format('update public.chat_sessions set trip_id = %s where id = %L', :strangers_trip, :'session'),
  '42501', null, 'a user cannot point their chat session at a trip they cannot see');
select throws_ok(format('update public.chat_sessions set user_id = %L where id = %L', :'stranger', :'session'),
  '42501', null, 'a user cannot hand their chat session to someone else');
select pg_temp.act_as(:'stranger');
update public.chat_sessions set metadata = '{"title": "Hijacked"}';
select pg_temp.act_as(:'viewer');
update public.chat_sessions set metadata = '{"title": "Hijacked"}' where id = :'session';
select pg_temp.act_as_anon();
update public.chat_sessions set metadata = '{"title": "Hijacked"}';
select pg_temp.act_as_owner();
select is((select metadata ->> 'title' || ' ' || user_id::text from public.chat_sessions where id = :'session'),
  'Stays ' || :'owner', 'neither a stranger, a trip collaborator nor anon can change someone else''s chat session');
select pg_temp.act_as_service_role();
update public.chat_sessions set ended_at = now() where id = :'session';
select pg_temp.act_as_owner();
select isnt((select ended_at from public.chat_sessions where id = :'session'), null,
  'service_role updates any chat session');

-- chat_messages: select --------------------------------------------------------------------------

select pg_temp.act_as(:'owner');
select results_eq('select id from public.chat_messages order by id', array[:question, :answer]::bigint[],
  'a user reads the messages of their own session');
select pg_temp.act_as(:'viewer');
select is_empty('select id from public.chat_messages',
  'a collaborator on the session''s trip cannot read its messages');
select pg_temp.act_as(:'stranger');
select is_empty('select id from public.chat_messages', 'a stranger cannot read someone else''s messages');
select pg_temp.act_as_anon();
select is_empty('select id from public.chat_messages', 'anon reads no messages');
select pg_temp.act_as_service_role();
select results_eq(format('select id from public.chat_messages where session_id = %L order by id', :'session'),
  array[:question, :answer]::bigint[], 'service_role reads every message');

-- chat_messages: insert --------------------------------------------------------------------------

\set say 'insert into public.chat_messages (session_id, role, content) values (%L, ''user'', %L)'

select pg_temp.act_as(:'owner');
select lives_ok(format(:'say', :'session', 'And where to eat?'), 'a user writes to their own session');
select pg_temp.act_as(:'viewer');
select throws_ok(format(:'say', :'session', 'Injected by the viewer'),
  '42501', null, 'a collaborator on the session''s trip cannot write to someone else''s session');
select pg_temp.act_as(:'stranger');
select throws_ok(format(:'say', :'session', 'Injected by a stranger'),
  '42501', null, 'a stranger cannot write to someone else''s session');
select pg_temp.act_as_anon();
select throws_ok(format(:'say', :'session', 'Injected by anon'), '42501', null, 'anon cannot write messages');
select pg_temp.act_as_service_role();
select lives_ok(format(:'say', :'session', 'Written by the backend'), 'service_role writes to any session');
select pg_temp.act_as_owner();
select results_eq(format('select content from public.chat_messages where session_id = %L order by id', :'session'),
  array['Where should we stay?', 'Try a ryokan in Gion', 'And where to eat?', 'Written by the backend'],
  'exactly the allowed messages were written');

-- chat_messages: no update policy ----------------------------------------------------------------

select pg_temp.act_as(:'owner');
update public.chat_messages set content = 'Edited' where id = :answer;
select pg_temp.act_as_owner();
select is((select content from public.chat_messages where id = :answer), 'Try a ryokan in Gion',
  'a user cannot edit a message, even in their own session');

-- chat_messages: delete --------------------------------------------------------------------------

select pg_temp.act_as(:'viewer');
delete from public.chat_messages;
select pg_temp.act_as(:'stranger');
delete from public.chat_messages;
select pg_temp.act_as_anon();
delete from public.chat_messages;
select pg_temp.act_as_owner();
select results_eq(format('select count(*) from public.chat_messages where session_id = %L', :'session'),
  array[4::bigint], 'neither a trip collaborator, a stranger nor anon can delete someone else''s messages');
select pg_temp.act_as(:'owner');
delete from public.chat_messages where id = :question;
select pg_temp.act_as_owner();
select is_empty(format('select id from public.chat_messages where id = %s', :question),
  'a user deletes a message of their own session');
select pg_temp.act_as_service_role();
delete from public.chat_messages where session_id = :'session' and content = 'Written by the backend';
select pg_temp.act_as_owner();
select results_eq(format('select count(*) from public.chat_messages where session_id = %L', :'session'),
  array[2::bigint], 'service_role deletes any message');

-- chat_tool_calls --------------------------------------------------------------------------------

\set call_tool 'insert into public.chat_tool_calls (message_id, tool_id, tool_name) values (%s, %L, ''search_hotels'')'

select pg_temp.act_as(:'owner');
select results_eq('select id from public.chat_tool_calls', array[:tool_call]::bigint[],
  'a user reads the tool calls of their own session');
select pg_temp.act_as(:'viewer');
select is_empty('select id from public.chat_tool_calls',
  'a collaborator on the session''s trip cannot read its tool calls');
select pg_temp.act_as(:'stranger');
select is_empty('select id from public.chat_tool_calls', 'a stranger cannot read someone else''s tool calls');
select pg_temp.act_as_anon();
select is_empty('select id from public.chat_tool_calls', 'anon reads no tool calls');
select pg_temp.act_as_service_role();
select results_eq(format('select id from public.chat_tool_calls where message_id = %s', :answer), array[:tool_call]::bigint[],
  'service_role reads every tool call');

select pg_temp.act_as(:'owner');
select throws_ok(format(:'call_tool', :answer, 'call_by_owner'),
  '42501', null, 'a user cannot record a tool call, even in their own session');
select pg_temp.act_as(:'stranger');
select throws_ok(format(:'call_tool', :answer, 'call_by_stranger'),
  '42501', null, 'a stranger cannot record a tool call');
select pg_temp.act_as_anon();
select throws_ok(format(:'call_tool', :answer, 'call_by_anon'), '42501', null, 'anon cannot record a tool call');
select pg_temp.act_as_service_role();
select lives_ok(format(:'call_tool', :answer, 'call_by_backend'), 'service_role records a tool call');

select pg_temp.act_as(:'owner');
update public.chat_tool_calls set status = 'completed', result = '{"forged": true}';
delete from public.chat_tool_calls;
select pg_temp.act_as(:'stranger');
update public.chat_tool_calls set status = 'failed';
delete from public.chat_tool_calls;
select pg_temp.act_as_owner();
select results_eq(format('select tool_id || '' '' || status from public.chat_tool_calls where message_id = %s order by id', :answer),
  array['call_1 pending', 'call_by_backend pending'],
  'users can neither change nor delete tool calls, even in their own session');

-- chat_sessions: delete (last: it takes the session's messages and tool calls with it) ------------

select pg_temp.act_as(:'stranger');
delete from public.chat_sessions;
select pg_temp.act_as(:'viewer');
delete from public.chat_sessions where id = :'session';
select pg_temp.act_as_anon();
delete from public.chat_sessions;
select pg_temp.act_as_owner();
select results_eq(format('select count(*) from public.chat_sessions where id = %L', :'session'), array[1::bigint],
  'neither a stranger, a trip collaborator nor anon can delete someone else''s chat session');
select pg_temp.act_as(:'owner');
delete from public.chat_sessions where id = :'session';
select pg_temp.act_as_owner();
select is_empty(format('select id from public.chat_sessions where id = %L', :'session'),
  'a user deletes their own chat session');
select pg_temp.act_as_service_role();
delete from public.chat_sessions where metadata ->> 'by' = 'viewer, shared trip';
select pg_temp.act_as_owner();
select is_empty($$select id from public.chat_sessions where metadata ->> 'by' = 'viewer, shared trip'$$,
  'service_role deletes any chat session');

select * from finish();
rollback;
