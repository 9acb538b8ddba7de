-- Database events that become webhook deliveries. Each trigger builds the event's payload and
-- hands it to dispatch_webhook_event(), which never raises: the user's change always commits.

-- trip_collaborators → trip.collaborator.added | updated | removed
create or replace function public.webhook_trip_collaboration()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_row public.trip_collaborators := case when tg_op = 'DELETE' then old else new end;
  v_event text := case tg_op
    when 'INSERT' then 'trip.collaborator.added'
    when 'UPDATE' then 'trip.collaborator.updated'
    else 'trip.collaborator.removed'
  end;
  v_payload jsonb;
begin
  v_payload := jsonb_build_object(
    'event', v_event,
    'trip_id', v_row.trip_id,
    'user_id', v_row.user_id,
    'added_by', v_row.added_by,
    'permission_level', v_row.permission_level,
    'operation', tg_op,
    'timestamp', now(),
    'data', to_jsonb(v_row));
  if tg_op = 'UPDATE' then
    v_payload := v_payload || jsonb_build_object('old_permission_level', old.permission_level);
  end if;
  perform public.dispatch_webhook_event(v_event, v_payload);
  return null;
end;
$$;

create trigger webhook_trip_collaborator_added
  after insert on public.trip_collaborators
  for each row execute function public.webhook_trip_collaboration();
create trigger webhook_trip_collaborator_updated
  after update on public.trip_collaborators
  for each row when (old.permission_level is distinct from new.permission_level)
  execute function public.webhook_trip_collaboration();
create trigger webhook_trip_collaborator_removed
  after delete on public.trip_collaborators
  for each row execute function public.webhook_trip_collaboration();

-- chat_messages → chat.message.created; a user's message also → chat.message.process (with its
-- content, for preference extraction).
create or replace function public.webhook_chat_message()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_session public.chat_sessions;
  v_payload jsonb;
begin
  select * into v_session from public.chat_sessions where id = new.session_id;
  v_payload := jsonb_build_object(
    'event', 'chat.message.created',
    'message_id', new.id,
    'session_id', new.session_id,
    'user_id', v_session.user_id,
    'trip_id', v_session.trip_id,
    'role', new.role,
    'timestamp', new.created_at,
    'metadata', new.metadata);
  perform public.dispatch_webhook_event('chat.message.created', v_payload);
  if new.role = 'user' then
    perform public.dispatch_webhook_event('chat.message.process',
      v_payload || jsonb_build_object('event', 'chat.message.process', 'content', new.content));
  end if;
  return null;
end;
$$;

create trigger webhook_chat_message_created
  after insert on public.chat_messages
  for each row execute function public.webhook_chat_message();

-- flights / accommodations booking_status → booking.confirmed when booked,
-- booking.<table>.cancelled when cancelled, booking.<table>.reserved when reserved.
create or replace function public.webhook_booking_status()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_trip public.trips;
  v_old_status text := case when tg_op = 'UPDATE' then old.booking_status end;
  v_event text := case new.booking_status
    when 'booked' then 'booking.confirmed'
    else format('booking.%s.%s', tg_table_name, new.booking_status)
  end;
begin
  select * into v_trip from public.trips where id = new.trip_id;
  perform public.dispatch_webhook_event(v_event, jsonb_build_object(
    'event', v_event,
    'booking_type', tg_table_name,
    'booking_id', new.id,
    'trip_id', new.trip_id,
    'user_id', v_trip.user_id,
    'trip_name', v_trip.name,
    'destination', v_trip.destination,
    'old_status', v_old_status,
    'new_status', new.booking_status,
    'timestamp', now(),
    'details', to_jsonb(new)));
  return null;
end;
$$;

do $$
declare
  t text;
begin
  foreach t in array array['flights', 'accommodations']
  loop
    execute format(
      'create trigger webhook_booking_status_inserted
         after insert on public.%I
         for each row when (new.booking_status in (''reserved'', ''booked'', ''cancelled''))
         execute function public.webhook_booking_status()', t);
    execute format(
      'create trigger webhook_booking_status_changed
         after update of booking_status on public.%I
         for each row when (old.booking_status is distinct from new.booking_status
           and new.booking_status in (''reserved'', ''booked'', ''cancelled''))
         execute function public.webhook_booking_status()', t);
  end loop;
end;
$$;

-- memories → one memory.generate.embedding per statement, with the ids that need an embedding
-- (inserted, or whose content changed).

create or replace function public.webhook_memories_changed()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_ids bigint[];
begin
  if tg_op = 'INSERT' then
    select array_agg(n.id order by n.id) into v_ids from new_rows n;
  else
    select array_agg(n.id order by n.id) into v_ids
    from new_rows n join old_rows o on o.id = n.id
    where n.content is distinct from o.content;
  end if;
  if v_ids is not null then
    perform public.dispatch_webhook_event('memory.generate.embedding', jsonb_build_object(
      'event', 'memory.generate.embedding',
      'memory_ids', to_jsonb(v_ids),
      'timestamp', now()));
  end if;
  return null;
end;
$$;

create trigger webhook_memories_inserted
  after insert on public.memories
  referencing new table as new_rows
  for each statement execute function public.webhook_memories_changed();
create trigger webhook_memories_updated
  after update on public.memories
  referencing old table as old_rows new table as new_rows
  for each statement execute function public.webhook_memories_changed();

-- Calendar sync on request: sends the trip and its itinerary as calendar.sync.request; trip-events
-- turns it into an iCalendar document. Callable by the user themself (or service_role) for a trip
-- they can see. Returns the webhook_logs id of the delivery.
create or replace function public.sync_to_calendar(
  p_user_id uuid,
  p_trip_id bigint,
  p_calendar_service text default 'ics')
returns bigint
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_trip public.trips;
  v_payload jsonb;
begin
  if auth.uid() is distinct from p_user_id and coalesce(auth.role(), '') <> 'service_role'
     and auth.uid() is not null then
    raise exception 'users can only sync their own calendar' using errcode = '42501';
  end if;

  select t.* into v_trip from public.trips t
  where t.id = p_trip_id
    and (t.user_id = p_user_id or exists (
      select 1 from public.trip_collaborators c where c.trip_id = t.id and c.user_id = p_user_id));
  if v_trip.id is null then
    raise exception 'trip % not found for user %', p_trip_id, p_user_id using errcode = 'P0002';
  end if;

  v_payload := jsonb_build_object(
    'event', 'calendar.sync.request',
    'user_id', p_user_id,
    'trip_id', v_trip.id,
    'calendar_service', p_calendar_service,
    'trip_name', v_trip.name,
    'destination', v_trip.destination,
    'start_date', v_trip.start_date,
    'end_date', v_trip.end_date,
    'items', coalesce((
      select jsonb_agg(jsonb_build_object(
          'id', i.id,
          'title', i.title,
          'description', i.description,
          'item_type', i.item_type,
          'location', i.location,
          'start_time', i.start_time,
          'end_time', i.end_time,
          'updated_at', i.updated_at)
        order by i.start_time nulls last, i.id)
      from public.itinerary_items i
      where i.trip_id = v_trip.id and i.booking_status <> 'cancelled'), '[]'));

  return (public.dispatch_webhook_event('calendar.sync.request', v_payload))[1];
end;
$$;

revoke execute on function
  public.webhook_trip_collaboration(),
  public.webhook_chat_message(),
  public.webhook_booking_status(),
  public.webhook_memories_changed(),
  public.sync_to_calendar(uuid, bigint, text)
  from public, anon, authenticated;
grant execute on function public.sync_to_calendar(uuid, bigint, text) to authenticated, service_role;
