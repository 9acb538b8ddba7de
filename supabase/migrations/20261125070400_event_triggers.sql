-- Database events that become webhook deliveries. Each trigger builds the event's payload and
-- hands it to dispatch_webhook_event(), which never raises: the user's change always commits.

-- The event catalog: every event type TripSage knows, the function that handles it, and what
-- emits it ("trigger:<table>.<trigger>", "function:<name>", "cron:<job>") or why nothing does.
-- dispatch_webhook_event() sends only events emitted here; verify_automation_setup() checks each
-- emitter exists and each emitted event has a webhook; the seed subscribes the local webhooks
-- from it; and each function's tests compare it with the events that function handles.
-- `test.webhook` (test_webhook()) is a diagnostic every function answers, not an event.
create table public.event_catalog (
  event_type text primary key check (event_type ~ '^[a-z_]+(\.[a-z_]+)+$'),
  function_name text check (function_name in ('trip-events', 'ai-processing')),
  emitted_by text[] not null default '{}'
    check (array_to_string(emitted_by, ' ') ~ '^((trigger:[a-z_]+\.[a-z_]+|function:[a-z_]+|cron:[a-z-]+)( |$))*$'),
  not_emitted_reason text,
  description text not null,
  constraint event_catalog_emitted_or_why
    check ((cardinality(emitted_by) > 0) = (not_emitted_reason is null)),
  constraint event_catalog_emitted_is_handled
    check (cardinality(emitted_by) = 0 or function_name is not null)
);
comment on table public.event_catalog is
  'Every event type: the edge function that handles it, and what emits it or why nothing does.';

insert into public.event_catalog (event_type, function_name, emitted_by, not_emitted_reason, description)
values
  ('trip.collaborator.added', 'trip-events',
   '{trigger:trip_collaborators.webhook_trip_collaborator_added}', null,
   'a collaborator joined a trip: invitation notification and e-mail'),
  ('trip.collaborator.updated', 'trip-events',
   '{trigger:trip_collaborators.webhook_trip_collaborator_updated}', null,
   'a collaborator''s permission level changed'),
  ('trip.collaborator.removed', 'trip-events',
   '{trigger:trip_collaborators.webhook_trip_collaborator_removed}', null,
   'a collaborator left or was removed'),
  ('booking.confirmed', 'trip-events',
   '{trigger:flights.webhook_booking_status_inserted,trigger:flights.webhook_booking_status_changed,'
   'trigger:accommodations.webhook_booking_status_inserted,trigger:accommodations.webhook_booking_status_changed}',
   null, 'a flight or stay became booked (booking_type names which): the owner is told'),
  ('booking.flights.cancelled', 'trip-events',
   '{trigger:flights.webhook_booking_status_inserted,trigger:flights.webhook_booking_status_changed}',
   null, 'a flight was cancelled: the owner is told'),
  ('booking.accommodations.cancelled', 'trip-events',
   '{trigger:accommodations.webhook_booking_status_inserted,trigger:accommodations.webhook_booking_status_changed}',
   null, 'a stay was cancelled: the owner is told'),
  ('calendar.sync.request', 'trip-events', '{function:sync_to_calendar}', null,
   'a trip''s itinerary, to be posted as an iCalendar document'),
  ('chat.message.process', 'ai-processing',
   '{trigger:chat_messages.webhook_chat_messages_inserted,cron:process-chat-messages}', null,
   'the users'' chat messages one statement wrote, or the sweep found unprocessed, by id: '
   'preferences and a session memory for each'),
  ('memory.generate.embedding', 'ai-processing',
   '{trigger:memories.webhook_memories_inserted,trigger:memories.webhook_memories_updated,'
   'cron:generate-memory-embeddings}', null,
   'memories to embed: the ids a statement changed, or none for the sweep'),
  ('chat.message.created', 'ai-processing', '{}',
   'a user''s message is delivered once, as chat.message.process; '
   'ai-processing still accepts this name, for one message',
   'a chat message was written'),
  ('chat.session.started', null, '{}',
   'no function acts on a session opening; clients follow chat_sessions through realtime',
   'a chat session was opened'),
  ('chat.session.ended', null, '{}',
   'no function acts on a session closing; clients follow chat_sessions through realtime',
   'a chat session was closed'),
  ('booking.flights.booked', null, '{}',
   'sent as booking.confirmed, whose booking_type is flights', 'a flight became booked'),
  ('booking.accommodations.booked', null, '{}',
   'sent as booking.confirmed, whose booking_type is accommodations', 'a stay became booked'),
  ('booking.flights.reserved', null, '{}',
   'a reservation is not final: nothing is sent until it is booked or cancelled',
   'a flight was reserved'),
  ('booking.accommodations.reserved', null, '{}',
   'a reservation is not final: nothing is sent until it is booked or cancelled',
   'a stay was reserved');

-- The emitted events a function handles: what its webhook subscribes to
-- (`update webhook_configs set events = catalog_events_of('trip-events') where …`).
create or replace function public.catalog_events_of(p_function_name text)
returns text[]
language sql
stable
set search_path = ''
as $$
  select coalesce(array_agg(e.event_type order by e.event_type), '{}')
  from public.event_catalog e
  where e.function_name = p_function_name and cardinality(e.emitted_by) > 0
$$;

-- A change to the catalog is a migration: nobody edits it at run time.
alter table public.event_catalog enable row level security;
revoke all on table public.event_catalog from anon, authenticated, service_role;
grant select on table public.event_catalog to service_role;
revoke execute on function public.catalog_events_of(text) from public, anon, authenticated;
grant execute on function public.catalog_events_of(text) to service_role;

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

-- chat_messages → one chat.message.process per statement, with the ids of the users' messages it
-- inserted (assistant and system messages are not processed). ai-processing reads their content:
-- a statement of many long messages stays one small delivery.
create or replace function public.webhook_chat_messages_inserted()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_ids bigint[];
begin
  select array_agg(n.id order by n.id) into v_ids from new_rows n where n.role = 'user';
  if v_ids is not null then
    perform public.dispatch_webhook_event('chat.message.process', jsonb_build_object(
      'event', 'chat.message.process',
      'message_ids', to_jsonb(v_ids),
      'timestamp', now()));
  end if;
  return null;
end;
$$;

create trigger webhook_chat_messages_inserted
  after insert on public.chat_messages
  referencing new table as new_rows
  for each statement execute function public.webhook_chat_messages_inserted();

-- flights / accommodations booking_status → booking.confirmed when booked (booking_type names the
-- table), booking.<table>.cancelled when cancelled.
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
         for each row when (new.booking_status in (''booked'', ''cancelled''))
         execute function public.webhook_booking_status()', t);
    execute format(
      'create trigger webhook_booking_status_changed
         after update of booking_status on public.%I
         for each row when (old.booking_status is distinct from new.booking_status
           and new.booking_status in (''booked'', ''cancelled''))
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
  -- The user themself or the service role. A token without a user id (an `authenticated` JWT
  -- with no `sub`, or anon) is refused; only a database session without API claims or role (the
  -- owner in psql, which PostgREST never is) may name any user.
  if coalesce(auth.role(), '') = 'service_role' then
    null;
  elsif auth.uid() is null then
    if auth.role() is not null or current_setting('role') in ('anon', 'authenticated') then
      raise exception 'a caller without a user id cannot sync a calendar' using errcode = '42501';
    end if;
  elsif auth.uid() <> p_user_id then
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
  public.webhook_chat_messages_inserted(),
  public.webhook_booking_status(),
  public.webhook_memories_changed(),
  public.sync_to_calendar(uuid, bigint, text)
  from public, anon, authenticated;
grant execute on function public.sync_to_calendar(uuid, bigint, text) to authenticated, service_role;
