-- RPCs for the edge functions, callable by the service role only (through /rest/v1/rpc).
--
-- trip-events reads a user's contact details, and for an invitation everything it needs at once. ai-processing embeds memories: a claim leases pending
-- memories (memory_embedding_is_pending) for a while with FOR UPDATE SKIP LOCKED, so two
-- invocations never take the same memory; what a failed invocation leaves behind is claimable again
-- when it releases it or its lease expires; a store writes only vectors received, for rows the lease
-- still holds whose content is unchanged. For chat it reads the users' messages still to process,
-- counts chat-model calls per user and minute, and stores session memories with their preferences.

-- A user's e-mail address and display name.
create function public.get_user_contact(p_user_id uuid)
returns table (email text, display_name text)
language sql
stable
security definer
set search_path = ''
as $$
  select u.email::text,
         coalesce(nullif(trim(u.raw_user_meta_data ->> 'full_name'), ''),
                  nullif(trim(u.raw_user_meta_data ->> 'name'), ''),
                  split_part(u.email::text, '@', 1))
  from auth.users u
  where u.id = p_user_id
$$;
comment on function public.get_user_contact(uuid) is
  'E-mail address and display name of a user, for the edge functions (service role only).';

-- Leases up to p_limit pending memories (of p_memory_ids, or any) for p_lease_seconds and returns
-- {"lease_id", "memories": [{id, content, content_hash}]}. One JSON value, not rows: PostgREST's
-- max_rows (1000 by default) caps the rows a function returns, which would leave the rest leased
-- and unseen.
create function public.claim_memory_embeddings(
  p_memory_ids bigint[] default null,
  p_limit integer default 2048,
  p_lease_seconds integer default 120)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_lease uuid := gen_random_uuid();
  v_memories jsonb;
begin
  if p_limit not between 1 and 20000 then
    raise exception 'p_limit must be between 1 and 20000, not %', p_limit using errcode = '22023';
  end if;
  if p_lease_seconds not between 1 and 3600 then
    raise exception 'p_lease_seconds must be between 1 and 3600, not %', p_lease_seconds
      using errcode = '22023';
  end if;
  with candidates as (
    select m.id from public.memories m
    where (p_memory_ids is null or m.id = any (p_memory_ids))
      and public.memory_embedding_is_pending(m.embedding, m.content, m.embedding_content_hash)
      and (m.embedding_lease_until is null or m.embedding_lease_until < now())
    order by m.id
    limit p_limit
    for update skip locked
  ), leased as (
    update public.memories m
    set embedding_lease_until = now() + make_interval(secs => p_lease_seconds),
        embedding_lease_id = v_lease
    from candidates c
    where m.id = c.id
    returning m.id, m.content, md5(m.content) as content_hash
  )
  select coalesce(jsonb_agg(jsonb_build_object('id', l.id, 'content', l.content,
                                               'content_hash', l.content_hash) order by l.id),
                  '[]')
  into v_memories
  from leased l;
  return jsonb_build_object('lease_id', v_lease, 'memories', v_memories);
end;
$$;

-- How many memories are pending, leased or not (of p_memory_ids, or all).
create function public.count_pending_memory_embeddings(p_memory_ids bigint[] default null)
returns bigint
language sql
stable
security definer
set search_path = ''
as $$
  select count(*) from public.memories m
  where (p_memory_ids is null or m.id = any (p_memory_ids))
    and public.memory_embedding_is_pending(m.embedding, m.content, m.embedding_content_hash)
$$;

-- Writes received vectors in one statement: p_embeddings is [{id, content_hash, embedding,
-- truncated?}]. Only rows still held by p_lease_id whose content is unchanged are written;
-- metadata is merged (embedding_model, embedding_generated_at), never replaced. Returns how many.
create function public.store_memory_embeddings(p_lease_id uuid, p_model text, p_embeddings jsonb)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_stored integer;
begin
  update public.memories m
  set embedding = (e.value ->> 'embedding')::extensions.vector,
      embedding_content_hash = e.value ->> 'content_hash',
      embedding_lease_until = null,
      embedding_lease_id = null,
      metadata = m.metadata
        || jsonb_build_object('embedding_model', p_model, 'embedding_generated_at', now())
        || case when (e.value ->> 'truncated')::boolean
                then jsonb_build_object('embedding_truncated', true)
                else '{}'::jsonb end
  from jsonb_array_elements(p_embeddings) e
  where m.id = (e.value ->> 'id')::bigint
    and m.embedding_lease_id = p_lease_id
    and md5(m.content) = e.value ->> 'content_hash';
  get diagnostics v_stored = row_count;
  return v_stored;
end;
$$;

-- Gives back what a lease still holds, so a retry need not wait for it to expire.
create function public.release_memory_embeddings(p_lease_id uuid)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_released integer;
begin
  update public.memories
  set embedding_lease_until = null, embedding_lease_id = null
  where embedding_lease_id = p_lease_id;
  get diagnostics v_released = row_count;
  return v_released;
end;
$$;

-- Upserts user_preference memories by exact (user, category, preference): confidence becomes
-- the larger of the old and new, last_reinforced now. p_preferences is
-- [{category, preference, confidence}].
create function public.upsert_user_preferences(
  p_user_id uuid, p_preferences jsonb, p_message_id bigint default null)
returns table (id bigint, category text, preference text, confidence double precision,
               inserted boolean)
language sql
security definer
set search_path = ''
as $$
  insert into public.memories as m (user_id, memory_type, content, metadata)
  select p_user_id, 'user_preference', format('%s: %s', p.category, p.preference),
         jsonb_build_object('category', p.category, 'preference', p.preference,
                            'confidence', p.confidence, 'last_reinforced', now(),
                            'source', 'chat', 'message_id', p_message_id)
  from jsonb_to_recordset(p_preferences) as p(category text, preference text,
                                               confidence double precision)
  on conflict (user_id, (metadata ->> 'category'), (metadata ->> 'preference'))
    where memory_type = 'user_preference'
  do update set metadata = m.metadata || jsonb_build_object(
    'confidence', greatest((m.metadata ->> 'confidence')::double precision,
                           (excluded.metadata ->> 'confidence')::double precision),
    'last_reinforced', now(),
    'message_id', p_message_id)
  returning m.id, m.metadata ->> 'category', m.metadata ->> 'preference',
            (m.metadata ->> 'confidence')::double precision, xmax = 0
$$;

-- What an invitation needs, in one round trip: the trip (null when it is gone), the collaborator's
-- level as the row holds it now (null when they are no longer one), and both people's contact
-- details (null for a user who is gone).
create function public.invitation_context(p_trip_id bigint, p_user_id uuid, p_added_by uuid)
returns jsonb
language sql
stable
security definer
set search_path = ''
as $$
  select jsonb_build_object(
    'trip', (select jsonb_build_object('id', t.id, 'name', t.name, 'destination', t.destination,
                                       'user_id', t.user_id)
             from public.trips t where t.id = p_trip_id),
    'permission_level', (select c.permission_level from public.trip_collaborators c
                         where c.trip_id = p_trip_id and c.user_id = p_user_id),
    'inviter', (select to_jsonb(u) from public.get_user_contact(p_added_by) u),
    'invitee', (select to_jsonb(u) from public.get_user_contact(p_user_id) u))
$$;

-- Chat messages ------------------------------------------------------------------------------------

-- The users' messages among p_message_ids that have no session memory yet, with their session's
-- user; and how many of the others already have one. One JSON value: PostgREST caps the rows a
-- function returns at max_rows.
create function public.pending_chat_messages(p_message_ids bigint[])
returns jsonb
language sql
stable
security definer
set search_path = ''
as $$
  select jsonb_build_object(
    'messages', coalesce(jsonb_agg(jsonb_build_object(
        'message_id', c.id, 'session_id', c.session_id, 'user_id', s.user_id, 'content', c.content)
        order by c.id) filter (where m.id is null), '[]'),
    'already_processed', count(*) filter (where m.id is not null))
  from public.chat_messages c
  join public.chat_sessions s on s.id = c.session_id
  left join public.session_memories m on m.source_message_id = c.id
  where c.id = any (p_message_ids) and c.role = 'user'
$$;

-- Chat-model calls per user in the current minute (UTC, a fixed window): one row per user,
-- restarted at zero when its minute has passed.
create table public.chat_model_calls (
  user_id uuid primary key references auth.users (id) on delete cascade,
  window_start timestamptz not null,
  calls integer not null check (calls >= 0)
);
comment on table public.chat_model_calls is
  'Chat-model calls ai-processing made for each user in the current minute, for its per-user cap.';
alter table public.chat_model_calls enable row level security;
revoke all on public.chat_model_calls from anon, authenticated, service_role;

-- Grants up to p_per_minute chat-model calls per user and minute: p_wanted is {"<user id>": n};
-- the answer says how many of each user's n may call the model (the rest use the rules). Users
-- are locked in id order, so concurrent deliveries never deadlock.
create function public.reserve_chat_model_calls(p_wanted jsonb, p_per_minute integer)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_window timestamptz := date_trunc('minute', now());
  v_user uuid;
  v_wanted integer;
  v_used integer;
  v_granted jsonb := '{}';
begin
  for v_user, v_wanted in
    select w.key::uuid, w.value::integer from jsonb_each_text(p_wanted) w order by 1
  loop
    insert into public.chat_model_calls as c (user_id, window_start, calls)
    values (v_user, v_window, 0)
    on conflict (user_id) do update
      set window_start = excluded.window_start,
          calls = case when c.window_start = excluded.window_start then c.calls else 0 end
    returning c.calls into v_used;
    v_wanted := greatest(0, least(v_wanted, p_per_minute - v_used));
    update public.chat_model_calls set calls = calls + v_wanted where user_id = v_user;
    v_granted := v_granted || jsonb_build_object(v_user::text, v_wanted);
  end loop;
  return v_granted;
end;
$$;

-- Session memories for chat messages, each with the preferences found in it (metadata
-- `preferences`), in one transaction: the memories are inserted once per message (a message that
-- already has one is left alone, its preferences not counted again), then each user's preferences
-- from the inserted ones are upserted. Messages deleted meanwhile are passed over.
create function public.store_chat_memories(p_memories jsonb)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_inserted jsonb;
  v_user record;
  v_preferences integer := 0;
begin
  with inserted as (
    insert into public.session_memories as s
      (session_id, user_id, content, embedding, source_message_id, metadata)
    select m.session_id, m.user_id, m.content, m.embedding::extensions.vector, m.source_message_id,
           coalesce(m.metadata, '{}')
    from jsonb_to_recordset(p_memories) as m(session_id uuid, user_id uuid, content text,
                                             embedding text, source_message_id bigint, metadata jsonb)
    where exists (select 1 from public.chat_messages c where c.id = m.source_message_id)
    on conflict (source_message_id) do nothing
    returning s.user_id, s.source_message_id, s.metadata -> 'preferences' as preferences)
  select coalesce(jsonb_agg(to_jsonb(i)), '[]') into v_inserted from inserted i;

  for v_user in
    select f.user_id, max(f.message_id) as message_id,
           jsonb_agg(jsonb_build_object('category', f.category, 'preference', f.preference,
                                        'confidence', f.confidence)) as preferences
    from (
      select i.user_id, p.category, p.preference, max(p.confidence) as confidence,
             max(i.source_message_id) as message_id
      from jsonb_to_recordset(v_inserted) as i(user_id uuid, source_message_id bigint, preferences jsonb)
      cross join lateral jsonb_to_recordset(coalesce(i.preferences, '[]'))
        as p(category text, preference text, confidence double precision)
      group by 1, 2, 3) f
    group by f.user_id
    order by f.user_id
  loop
    v_preferences := v_preferences + (select count(*)::integer from public.upsert_user_preferences(
      v_user.user_id, v_user.preferences, v_user.message_id));
  end loop;
  return jsonb_build_object('session_memories', jsonb_array_length(v_inserted),
                            'preferences', v_preferences);
end;
$$;

-- The sweep: one memory.generate.embedding without ids when anything is pending and unleased.
create function public.enqueue_memory_embeddings()
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_pending integer;
begin
  select count(*) into v_pending from public.memories m
  where public.memory_embedding_is_pending(m.embedding, m.content, m.embedding_content_hash)
    and (m.embedding_lease_until is null or m.embedding_lease_until < now());
  if v_pending > 0 then
    perform public.dispatch_webhook_event('memory.generate.embedding',
      jsonb_build_object('event', 'memory.generate.embedding', 'reason', 'sweep',
                         'pending', v_pending, 'timestamp', now()));
  end if;
  return v_pending;
end;
$$;

-- The chat sweep: one chat.message.process naming users' messages still without a session memory
-- (their delivery's background work failed, or its worker died), oldest first, at most 2,048 (one
-- embeddings request). Only messages older than five minutes, which their own delivery has had time
-- to finish (its work stops within two), and younger than a day: a message that fails for a day
-- stays as it is.
create function public.enqueue_chat_messages()
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_ids bigint[];
begin
  select array_agg(x.id order by x.id) into v_ids
  from (
    select c.id from public.chat_messages c
    where c.role = 'user'
      and c.created_at >= now() - interval '1 day'
      and c.created_at < now() - interval '5 minutes'
      and not exists (select 1 from public.session_memories m where m.source_message_id = c.id)
    order by c.created_at, c.id
    limit 2048) x;
  if v_ids is not null then
    perform public.dispatch_webhook_event('chat.message.process',
      jsonb_build_object('event', 'chat.message.process', 'reason', 'sweep',
                         'message_ids', to_jsonb(v_ids), 'timestamp', now()));
  end if;
  return coalesce(cardinality(v_ids), 0);
end;
$$;

do $$
declare
  f text;
begin
  foreach f in array array[
    'public.claim_memory_embeddings(bigint[], integer, integer)',
    'public.count_pending_memory_embeddings(bigint[])',
    'public.store_memory_embeddings(uuid, text, jsonb)',
    'public.release_memory_embeddings(uuid)',
    'public.upsert_user_preferences(uuid, jsonb, bigint)',
    'public.pending_chat_messages(bigint[])',
    'public.reserve_chat_model_calls(jsonb, integer)',
    'public.store_chat_memories(jsonb)',
    'public.enqueue_memory_embeddings()',
    'public.enqueue_chat_messages()',
    'public.get_user_contact(uuid)',
    'public.invitation_context(bigint, uuid, uuid)']
  loop
    execute format('revoke execute on function %s from public, anon, authenticated', f);
    execute format('grant execute on function %s to service_role', f);
  end loop;
end;
$$;
