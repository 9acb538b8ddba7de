-- Row level security on every table. Policies are written for the `authenticated` role only, so
-- `anon` sees and changes nothing; `service_role` bypasses RLS (the Edge Functions use it).
--
-- Trip access is one question asked by many policies: "what may the current user do with this
-- trip?". It is answered by trip_permission(), a SECURITY DEFINER function, so that the trips
-- policies can look at trip_collaborators and vice versa without recursing through RLS.

create or replace function public.trip_permission(p_trip_id bigint)
returns text
language sql
stable
security definer
set search_path = ''
as $$
  select case
    when t.user_id = auth.uid() then 'owner'
    else (
      select c.permission_level
      from public.trip_collaborators c
      where c.trip_id = t.id and c.user_id = auth.uid()
    )
  end
  from public.trips t
  where t.id = p_trip_id;
$$;
comment on function public.trip_permission(bigint) is
  'The current user''s access to a trip: owner, admin, edit, view, or null for none.';

create or replace function public.can_view_trip(p_trip_id bigint)
returns boolean
language sql
stable
set search_path = ''
as $$ select public.trip_permission(p_trip_id) is not null $$;

create or replace function public.can_edit_trip(p_trip_id bigint)
returns boolean
language sql
stable
set search_path = ''
as $$ select coalesce(public.trip_permission(p_trip_id) in ('owner', 'admin', 'edit'), false) $$;

create or replace function public.can_manage_trip_collaborators(p_trip_id bigint)
returns boolean
language sql
stable
set search_path = ''
as $$ select coalesce(public.trip_permission(p_trip_id) in ('owner', 'admin'), false) $$;

revoke execute on function public.trip_permission(bigint), public.can_view_trip(bigint),
  public.can_edit_trip(bigint), public.can_manage_trip_collaborators(bigint) from public, anon;
grant execute on function public.trip_permission(bigint), public.can_view_trip(bigint),
  public.can_edit_trip(bigint), public.can_manage_trip_collaborators(bigint)
  to authenticated, service_role;

alter table public.trips enable row level security;
alter table public.trip_collaborators enable row level security;
alter table public.itinerary_items enable row level security;
alter table public.flights enable row level security;
alter table public.accommodations enable row level security;
alter table public.transportation enable row level security;
alter table public.chat_sessions enable row level security;
alter table public.chat_messages enable row level security;
alter table public.chat_tool_calls enable row level security;
alter table public.api_keys enable row level security;
alter table public.memories enable row level security;
alter table public.session_memories enable row level security;
alter table public.notifications enable row level security;
alter table public.system_metrics enable row level security;
alter table public.search_destinations enable row level security;
alter table public.search_activities enable row level security;
alter table public.search_flights enable row level security;
alter table public.search_hotels enable row level security;

-- Trips: the owner and every collaborator see a trip; owner, admins and editors change it; only
-- the owner deletes it or hands it to someone else.
-- Ownership is checked on the row itself first: can_view_trip()'s lookup of trips cannot see a
-- row inserted by the same statement, and an owner's `insert … returning` (supabase-js
-- `.insert(…).select()`, PostgREST's `Prefer: return=representation`) must see the new trip.
create policy "Trip members can view trips" on public.trips
  for select to authenticated using (user_id = (select auth.uid()) or public.can_view_trip(id));
create policy "Users create their own trips" on public.trips
  for insert to authenticated with check (user_id = (select auth.uid()));
create policy "Owners and editors update trips" on public.trips
  for update to authenticated
  using (public.can_edit_trip(id))
  with check (public.can_edit_trip(id));
create policy "Owners delete trips" on public.trips
  for delete to authenticated using (user_id = (select auth.uid()));

-- RLS sees only the new row, so a change of owner is checked against the old one here.
create or replace function public.guard_trip_owner()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if new.user_id is distinct from old.user_id
     and auth.uid() is not null
     and auth.uid() is distinct from old.user_id then
    raise exception 'only the owner of trip % can transfer it', old.id
      using errcode = '42501';
  end if;
  return new;
end;
$$;
create trigger guard_trip_owner before update of user_id on public.trips
  for each row execute function public.guard_trip_owner();

-- Collaborators: members see who else is on the trip; owners and admins add, change and remove
-- collaborators (recording themselves as added_by); anyone may leave a trip.
create policy "Trip members can view collaborators" on public.trip_collaborators
  for select to authenticated
  using (user_id = (select auth.uid()) or public.can_view_trip(trip_id));
create policy "Owners and admins add collaborators" on public.trip_collaborators
  for insert to authenticated
  with check (
    public.can_manage_trip_collaborators(trip_id)
    and added_by = (select auth.uid())
    and user_id <> (select t.user_id from public.trips t where t.id = trip_id)
  );
create policy "Owners and admins change collaborators" on public.trip_collaborators
  for update to authenticated
  using (public.can_manage_trip_collaborators(trip_id))
  with check (public.can_manage_trip_collaborators(trip_id));
-- A change is only ever a new permission level: who the collaborator is and who added them stay
-- as the INSERT policy checked them.
revoke update on table public.trip_collaborators from anon, authenticated;
grant update (permission_level) on table public.trip_collaborators to authenticated;
create policy "Owners and admins remove collaborators, anyone leaves" on public.trip_collaborators
  for delete to authenticated
  using (user_id = (select auth.uid()) or public.can_manage_trip_collaborators(trip_id));

-- Trip content: members see it, owners/admins/editors change it.
do $$
declare
  t text;
begin
  foreach t in array array['itinerary_items', 'flights', 'accommodations', 'transportation']
  loop
    execute format(
      'create policy "Trip members can view %1$s" on public.%1$I
         for select to authenticated using (public.can_view_trip(trip_id))', t);
    execute format(
      'create policy "Trip editors add %1$s" on public.%1$I
         for insert to authenticated with check (public.can_edit_trip(trip_id))', t);
    execute format(
      'create policy "Trip editors change %1$s" on public.%1$I
         for update to authenticated
         using (public.can_edit_trip(trip_id)) with check (public.can_edit_trip(trip_id))', t);
    execute format(
      'create policy "Trip editors remove %1$s" on public.%1$I
         for delete to authenticated using (public.can_edit_trip(trip_id))', t);
  end loop;
end;
$$;

-- Chat: a session and its messages belong to the user who opened it. A session may point at a
-- trip only if that user can see the trip. Tool calls are written by the backend.
create policy "Users manage their own chat sessions" on public.chat_sessions
  for all to authenticated
  using (user_id = (select auth.uid()))
  with check (user_id = (select auth.uid()) and (trip_id is null or public.can_view_trip(trip_id)));

create policy "Users read messages of their sessions" on public.chat_messages
  for select to authenticated
  using (exists (
    select 1 from public.chat_sessions s
    where s.id = session_id and s.user_id = (select auth.uid())
  ));
create policy "Users write to their own sessions" on public.chat_messages
  for insert to authenticated
  with check (exists (
    select 1 from public.chat_sessions s
    where s.id = session_id and s.user_id = (select auth.uid())
  ));
create policy "Users delete messages of their sessions" on public.chat_messages
  for delete to authenticated
  using (exists (
    select 1 from public.chat_sessions s
    where s.id = session_id and s.user_id = (select auth.uid())
  ));

create policy "Users read tool calls of their sessions" on public.chat_tool_calls
  for select to authenticated
  using (exists (
    select 1 from public.chat_messages m
    join public.chat_sessions s on s.id = m.session_id
    where m.id = message_id and s.user_id = (select auth.uid())
  ));

-- Per-user data: each user sees and changes only their own rows.
create policy "Users manage their own API keys" on public.api_keys
  for all to authenticated
  using (user_id = (select auth.uid())) with check (user_id = (select auth.uid()));
create policy "Users manage their own memories" on public.memories
  for all to authenticated
  using (user_id = (select auth.uid())) with check (user_id = (select auth.uid()));
-- Users manage their memories' content; the embedding and its bookkeeping are ai-processing's.
revoke update on table public.memories from anon, authenticated;
grant update (user_id, memory_type, content, metadata) on table public.memories to anon, authenticated;
create policy "Users read their own session memories" on public.session_memories
  for select to authenticated using (user_id = (select auth.uid()));
create policy "Users delete their own session memories" on public.session_memories
  for delete to authenticated using (user_id = (select auth.uid()));

-- Notifications are written by the backend; users read, mark read and delete their own.
create policy "Users read their own notifications" on public.notifications
  for select to authenticated using (user_id = (select auth.uid()));
create policy "Users mark their own notifications" on public.notifications
  for update to authenticated
  using (user_id = (select auth.uid())) with check (user_id = (select auth.uid()));
create policy "Users delete their own notifications" on public.notifications
  for delete to authenticated using (user_id = (select auth.uid()));
-- Marking read is the only change a user makes to a notification.
revoke update on table public.notifications from anon, authenticated;
grant update (read) on table public.notifications to authenticated;

-- system_metrics has RLS and no policy: only service_role (and the database owner) see it.
revoke all on table public.system_metrics from anon, authenticated;

do $$
declare
  t text;
begin
  foreach t in array array['search_destinations', 'search_activities', 'search_flights', 'search_hotels']
  loop
    execute format(
      'create policy "Users manage their own %1$s" on public.%1$I
         for all to authenticated
         using (user_id = (select auth.uid())) with check (user_id = (select auth.uid()))', t);
  end loop;
end;
$$;

-- TRUNCATE ignores row level security; TRIGGER and REFERENCES are not for API roles either.
revoke truncate, trigger, references on all tables in schema public from anon, authenticated;
