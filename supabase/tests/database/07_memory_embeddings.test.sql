-- The embedding pipeline's database side: one memory.generate.embedding per statement with the
-- ids that need an embedding, leases that never hand the same memory out twice, stores that write
-- only what the lease still holds with unchanged content and merge metadata, releases, the sweep,
-- preference upserts, and who may call what.
begin;
create extension if not exists pgtap with schema extensions;
\ir helpers.psql

select plan(47);

select pg_temp.create_user('ada@example.com') as ada \gset

create function pg_temp.vector_text(p_value real, p_dimensions integer default 1536)
returns text
language sql
as $$ select '[' || array_to_string(array_fill(p_value, array[p_dimensions]), ',') || ']' $$;

create function pg_temp.embedding_events()
returns setof jsonb
language sql
as $$
  select payload -> 'memory_ids' from public.webhook_logs
  where event_type = 'memory.generate.embedding' order by id
$$;

-- Trigger --------------------------------------------------------------------------------------
delete from public.webhook_logs where event_type = 'memory.generate.embedding';
insert into public.memories (user_id, content, metadata)
values (:'ada', 'Prefers ryokans', '{"source": "chat"}'),
       (:'ada', 'Travels by train', '{}'),
       (:'ada', 'Vegetarian', '{}');
select array_agg(id order by id) as ids from public.memories where user_id = :'ada' \gset
select is((select count(*) from pg_temp.embedding_events()), 1::bigint,
  'one statement inserting three memories sends one event');
select is((select e from pg_temp.embedding_events() e), to_jsonb(:'ids'::bigint[]),
  'with the ids of all three');
select is((select payload ->> 'event' from public.webhook_logs
           where event_type = 'memory.generate.embedding'), 'memory.generate.embedding',
  'the payload names the event');

update public.memories set metadata = '{"pinned": true}' where id = (:'ids'::bigint[])[2];
select is((select count(*) from pg_temp.embedding_events()), 1::bigint,
  'an update that keeps the content sends nothing');
update public.memories set content = 'Travels by night train' where id = (:'ids'::bigint[])[2];
select is((select e from pg_temp.embedding_events() e offset 1),
  jsonb_build_array((:'ids'::bigint[])[2]), 'a content change sends its id');

-- Claims ---------------------------------------------------------------------------------------
select is(public.count_pending_memory_embeddings(:'ids'), 3::bigint, 'three are pending');
create function pg_temp.claim(p_ids bigint[], p_limit integer)
returns table (id bigint, content text, content_hash text, lease_id uuid)
language sql
as $$
  select m.id, m.content, m.content_hash, (c.claim ->> 'lease_id')::uuid
  from (select public.claim_memory_embeddings(p_ids, p_limit, 120) as claim) c,
       jsonb_to_recordset(c.claim -> 'memories') as m(id bigint, content text, content_hash text)
$$;

create temporary table first_claim on commit drop as
  select * from pg_temp.claim(:'ids', 2);
select is((select count(*) from first_claim), 2::bigint, 'a claim takes at most p_limit');
select is((select count(distinct lease_id) from first_claim), 1::bigint, 'under one lease');
select is(public.count_pending_memory_embeddings(:'ids'), 3::bigint,
  'leased memories still count as pending');
select is((select array_agg(content_hash order by id) from first_claim),
  (select array_agg(md5(content) order by id) from public.memories where id = any (:'ids') and id in (select id from first_claim)),
  'with the hash of the content it embeds');
create temporary table second_claim on commit drop as
  select * from pg_temp.claim(:'ids', 10);
select is((select count(*) from second_claim where id in (select id from first_claim)), 0::bigint,
  'leased memories are not handed out again');
select is((select count(*) from second_claim), 1::bigint, 'only the one never claimed');
select lease_id as lease from first_claim limit 1 \gset

-- The pending predicate is what the partial index is built on, so the planner can use it.
create function pg_temp.plan(p_query text)
returns text
language plpgsql
as $$
declare
  v_line text;
  v_plan text := '';
begin
  for v_line in execute 'explain ' || p_query loop
    v_plan := v_plan || v_line || E'\n';
  end loop;
  return v_plan;
end;
$$;
set local enable_seqscan = off;
select matches(pg_temp.plan($$select m.id from public.memories m
    where public.memory_embedding_is_pending(m.embedding, m.content, m.embedding_content_hash)$$),
  'memories_pending_embedding_idx', 'pending memories are found through their partial index');
reset enable_seqscan;

-- Stores ---------------------------------------------------------------------------------------
select id as first_id, content_hash as first_hash from first_claim order by id limit 1 \gset
select is(public.store_memory_embeddings(gen_random_uuid(), 'text-embedding-3-small',
            jsonb_build_array(jsonb_build_object('id', :first_id, 'content_hash', :'first_hash',
                                                 'embedding', pg_temp.vector_text(0.5)::jsonb))),
  0, 'a store under another lease writes nothing');
select is(public.store_memory_embeddings(:'lease', 'text-embedding-3-small',
            jsonb_build_array(jsonb_build_object('id', :first_id, 'content_hash', :'first_hash',
                                                 'embedding', pg_temp.vector_text(0.5)::jsonb,
                                                 'truncated', true))),
  1, 'the lease holder stores a vector');
select is((select embedding::text from public.memories where id = :first_id),
  pg_temp.vector_text(0.5), 'exactly the vector received');
select is((select metadata - 'embedding_generated_at' from public.memories where id = :first_id),
  '{"source": "chat", "embedding_model": "text-embedding-3-small", "embedding_truncated": true}'::jsonb,
  'metadata is merged, not replaced');
select ok((select embedding_lease_id is null and embedding_content_hash = md5(content)
           from public.memories where id = :first_id),
  'the stored memory is no longer leased nor pending');
select throws_ok(format($$select public.store_memory_embeddings(%L, 'm',
                          jsonb_build_array(jsonb_build_object('id', %s, 'content_hash', %L,
                                                               'embedding', %L::jsonb)))$$,
                        :'lease', (select max(id) from first_claim),
                        (select content_hash from first_claim order by id desc limit 1),
                        pg_temp.vector_text(0.5, 1535)),
  '22000', null, 'a vector of the wrong dimension is refused');

select id as second_id, content_hash as second_hash from first_claim order by id desc limit 1 \gset
update public.memories set content = 'Travels by day train' where id = :second_id;
select is(public.store_memory_embeddings(:'lease', 'm',
            jsonb_build_array(jsonb_build_object('id', :second_id, 'content_hash', :'second_hash',
                                                 'embedding', pg_temp.vector_text(0.25)::jsonb))),
  0, 'a vector of content that changed since the claim is not stored');
select is(public.release_memory_embeddings(:'lease'), 1, 'release gives back what the lease holds');
select is((select count(*) from pg_temp.claim(:'ids', 10)), 1::bigint,
  'and the released memory can be claimed again');

update public.memories set embedding_lease_until = now() - interval '1 second'
where id = any (:'ids');
select is((select count(*) from pg_temp.claim(:'ids', 10)), 2::bigint,
  'an expired lease is claimable');

-- The sweep ------------------------------------------------------------------------------------
update public.memories set embedding_lease_until = null, embedding_lease_id = null
where id = any (:'ids');
select is(public.enqueue_memory_embeddings() >= 2, true, 'the sweep counts unleased pending memories');

-- Preferences ----------------------------------------------------------------------------------
select is((select array_agg(inserted order by preference) from public.upsert_user_preferences(:'ada',
            '[{"category": "budget", "preference": "budget travel", "confidence": 0.6},
              {"category": "accommodation", "preference": "hostel", "confidence": 0.7}]', null)),
  array[true, true], 'new preferences are inserted');
select is((select confidence from public.upsert_user_preferences(:'ada',
            '[{"category": "budget", "preference": "budget travel", "confidence": 0.4}]', 42)),
  0.6::double precision, 'a weaker repeat keeps the higher confidence');
select is((select confidence from public.upsert_user_preferences(:'ada',
            '[{"category": "budget", "preference": "budget travel", "confidence": 0.9}]', 43)),
  0.9::double precision, 'a stronger one raises it');
select is((select count(*) from public.memories
           where user_id = :'ada' and memory_type = 'user_preference' and metadata ? 'category'), 2::bigint,
  'one memory per (user, category, preference)');

-- Chat messages --------------------------------------------------------------------------------
insert into public.chat_sessions (user_id) values (:'ada') returning id as session \gset
with m as (
  insert into public.chat_messages (session_id, role, content)
  values (:'session', 'user', 'A cheap hostel'), (:'session', 'assistant', 'Sure'),
         (:'session', 'user', 'Hostels again')
  returning id, role)
select array_agg(id order by id) filter (where role = 'user') as chat_ids,
       array_agg(id) filter (where role = 'assistant') as assistant_ids from m \gset
select is((select jsonb_array_length(p -> 'messages') || ' ' || (p ->> 'already_processed')
           from public.pending_chat_messages(:'chat_ids'::bigint[] || :'assistant_ids'::bigint[]) p),
  '2 0', 'pending chat messages are the users'' messages without a session memory');
select is(public.store_chat_memories(jsonb_build_array(
    jsonb_build_object('session_id', :'session', 'user_id', :'ada', 'content', 'A cheap hostel',
      'source_message_id', (:'chat_ids'::bigint[])[1], 'metadata', jsonb_build_object('preferences',
        '[{"category": "accommodation", "preference": "hostel", "confidence": 0.6}]'::jsonb)),
    jsonb_build_object('session_id', :'session', 'user_id', :'ada', 'content', 'Hostels again',
      'source_message_id', (:'chat_ids'::bigint[])[2], 'metadata', jsonb_build_object('preferences',
        '[{"category": "accommodation", "preference": "hostel", "confidence": 0.8}]'::jsonb)))),
  '{"preferences": 1, "session_memories": 2}'::jsonb,
  'two session memories, one preference found twice: one upsert, with the higher confidence');
select is((select (metadata ->> 'confidence')::double precision from public.memories
           where user_id = :'ada' and metadata ->> 'preference' = 'hostel'), 0.8::double precision,
  'the preference keeps the higher confidence');
select is(public.store_chat_memories(jsonb_build_array(
    jsonb_build_object('session_id', :'session', 'user_id', :'ada', 'content', 'A cheap hostel',
      'source_message_id', (:'chat_ids'::bigint[])[1], 'metadata', jsonb_build_object('preferences',
        '[{"category": "accommodation", "preference": "hostel", "confidence": 0.9}]'::jsonb)))),
  '{"preferences": 0, "session_memories": 0}'::jsonb,
  'stored again, a message already remembered changes nothing');
select is((select (p ->> 'already_processed') || ' ' || jsonb_array_length(p -> 'messages')
           from public.pending_chat_messages(:'chat_ids') p),
  '2 0', 'and both count as processed');

select is(public.reserve_chat_model_calls(jsonb_build_object(:'ada', 2), 3),
  jsonb_build_object(:'ada', 2), 'chat-model calls are granted up to the cap');
select is(public.reserve_chat_model_calls(jsonb_build_object(:'ada', 2), 3),
  jsonb_build_object(:'ada', 1), 'then only what is left of it');
select is(public.reserve_chat_model_calls(jsonb_build_object(:'ada', 4), 3),
  jsonb_build_object(:'ada', 0), 'then none, within the minute');
update public.chat_model_calls set window_start = window_start - interval '1 minute'
where user_id = :'ada';
select is(public.reserve_chat_model_calls(jsonb_build_object(:'ada', 4), 3),
  jsonb_build_object(:'ada', 3), 'a new minute counts from zero');

-- The chat sweep ------------------------------------------------------------------------------
-- Everything else in the database is left out: only this test's messages are looked at.
update public.chat_messages set created_at = now() - interval '2 days'
where id <> all (:'chat_ids'::bigint[] || :'assistant_ids'::bigint[]);
with m as (
  insert into public.chat_messages (session_id, role, content, created_at)
  values (:'session', 'user', 'Left behind', now() - interval '10 minutes'),
         (:'session', 'assistant', 'An old answer', now() - interval '10 minutes'),
         (:'session', 'user', 'Just written', now() - interval '1 minute'),
         (:'session', 'user', 'Given up on', now() - interval '2 days')
  returning id, content)
select (select id from m where content = 'Left behind') as left_behind \gset
update public.chat_messages set created_at = now() - interval '10 minutes'
where id = any (:'chat_ids'::bigint[]);
delete from public.webhook_logs where event_type = 'chat.message.process';
select is(public.enqueue_chat_messages(), 1,
  'the chat sweep counts users'' messages of the last day, five minutes old, without a session memory');
select is((select payload -> 'message_ids' || jsonb_build_array(payload ->> 'reason')
           from public.webhook_logs where event_type = 'chat.message.process'),
  jsonb_build_array(:left_behind, 'sweep'), 'and sends one chat.message.process naming them');
delete from public.webhook_logs where event_type = 'chat.message.process';
update public.chat_messages set created_at = now() - interval '2 days' where id = :left_behind;
select is(public.enqueue_chat_messages(), 0, 'with nothing left, it sends nothing');
select is((select count(*) from public.webhook_logs where event_type = 'chat.message.process'),
  0::bigint, 'no event');

-- Who may call what ----------------------------------------------------------------------------
select pg_temp.act_as(:'ada');
select throws_ok('select public.claim_memory_embeddings()', '42501', null,
  'users cannot claim memories');
select throws_ok('select public.enqueue_chat_messages()', '42501', null,
  'nor run the chat sweep');
select throws_ok(format('select public.reserve_chat_model_calls(%L, 1000)', jsonb_build_object(:'ada', 1)),
  '42501', null, 'users cannot grant themselves chat-model calls');
select throws_ok('select * from public.chat_model_calls', '42501', null,
  'nor read the counts');
select throws_ok(format('update public.memories set embedding = %L where id = %s',
                        pg_temp.vector_text(1), :first_id),
  '42501', null, 'users cannot write embeddings');
select lives_ok(format($$update public.memories set content = 'Loves ryokans' where id = %s$$, :first_id),
  'users still edit their memories');

select * from finish();
rollback;
