-- RPCs for the edge functions, callable by the service role only (through /rest/v1/rpc).
--
-- trip-events reads a user's contact details. ai-processing embeds memories: a claim leases pending
-- memories (memory_embedding_is_pending) for a while with FOR UPDATE SKIP LOCKED, so two
-- invocations never take the same memory; what a failed invocation leaves behind is claimable again
-- when it releases it or its lease expires; a store writes only vectors received, for rows the lease
-- still holds whose content is unchanged. It also upserts the preferences it finds in chat.

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
    'public.enqueue_memory_embeddings()',
    'public.get_user_contact(uuid)']
  loop
    execute format('revoke execute on function %s from public, anon, authenticated', f);
    execute format('grant execute on function %s to service_role', f);
  end loop;
end;
$$;
