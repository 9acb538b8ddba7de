-- RPCs for signed-in users (exposed through PostgREST as /rest/v1/rpc/<name>). Each runs with the
-- caller's rights, so row level security decides what it may touch.

-- Replaces one of the caller's BYOK keys with a new encrypted key and hash, and records when.
create or replace function public.rotate_user_api_key(
  p_key_id bigint,
  p_encrypted_key text,
  p_key_hash text,
  p_expires_at timestamptz default null)
returns public.api_keys
language plpgsql
security invoker
set search_path = ''
as $$
declare
  v_key public.api_keys;
begin
  if coalesce(btrim(p_encrypted_key), '') = '' or coalesce(btrim(p_key_hash), '') = '' then
    raise exception 'a rotated key needs both the encrypted key and its hash' using errcode = '22023';
  end if;
  update public.api_keys set
    encrypted_key = p_encrypted_key,
    key_hash = p_key_hash,
    expires_at = p_expires_at,
    is_active = true,
    last_used_at = null,
    metadata = metadata || jsonb_build_object('rotated_at', now())
  where id = p_key_id
  returning * into v_key;
  if v_key.id is null then
    raise exception 'API key % not found', p_key_id using errcode = 'P0002';
  end if;
  return v_key;
end;
$$;

-- The caller's unread notifications count.
create or replace function public.get_unread_notification_count()
returns bigint
language sql
stable
security invoker
set search_path = ''
as $$ select count(*) from public.notifications where user_id = auth.uid() and not read $$;

-- Marks the caller's notifications read: the given ids, or all when none are given. Returns how
-- many changed.
create or replace function public.mark_notifications_read(p_notification_ids bigint[] default null)
returns integer
language plpgsql
security invoker
set search_path = ''
as $$
declare
  v_count integer;
begin
  update public.notifications set read = true
  where user_id = auth.uid() and not read
    and (p_notification_ids is null or id = any (p_notification_ids));
  get diagnostics v_count = row_count;
  return v_count;
end;
$$;

revoke execute on function
  public.rotate_user_api_key(bigint, text, text, timestamptz),
  public.get_unread_notification_count(),
  public.mark_notifications_read(bigint[])
  from public, anon;
grant execute on function
  public.rotate_user_api_key(bigint, text, text, timestamptz),
  public.get_unread_notification_count(),
  public.mark_notifications_read(bigint[])
  to authenticated, service_role;
