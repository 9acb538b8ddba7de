-- The TripSage schema: trips and their bookings, chat, BYOK API keys, memories, notifications,
-- metrics and search caches. Every user id references auth.users and disappears with its user.

-- Keeps updated_at honest on every table that has one.
create or replace function public.set_updated_at()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  new.updated_at := now();
  return new;
end;
$$;

-- Trips ------------------------------------------------------------------------------------------

create table public.trips (
  id bigint generated always as identity primary key,
  user_id uuid not null references auth.users (id) on delete cascade,
  name text not null check (length(btrim(name)) > 0),
  start_date date not null,
  end_date date not null,
  destination text not null,
  budget numeric check (budget >= 0),
  travelers integer not null default 1 check (travelers > 0),
  status text not null default 'planning'
    check (status in ('planning', 'booked', 'completed', 'cancelled', 'archived')),
  trip_type text not null default 'leisure'
    check (trip_type in ('leisure', 'business', 'family', 'solo', 'other')),
  flexibility jsonb not null default '{}',
  notes text[],
  search_metadata jsonb not null default '{}',
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint trips_dates_ordered check (end_date >= start_date)
);
create index trips_user_id_idx on public.trips (user_id);
create index trips_status_updated_idx on public.trips (status, updated_at);

create table public.trip_collaborators (
  id bigint generated always as identity primary key,
  trip_id bigint not null references public.trips (id) on delete cascade,
  user_id uuid not null references auth.users (id) on delete cascade,
  permission_level text not null default 'view' check (permission_level in ('view', 'edit', 'admin')),
  added_by uuid not null references auth.users (id) on delete cascade,
  added_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint trip_collaborators_trip_user_key unique (trip_id, user_id)
);
create index trip_collaborators_user_id_idx on public.trip_collaborators (user_id);

create table public.itinerary_items (
  id bigint generated always as identity primary key,
  trip_id bigint not null references public.trips (id) on delete cascade,
  title text not null,
  description text,
  item_type text not null
    check (item_type in ('activity', 'meal', 'transport', 'accommodation', 'event', 'other')),
  start_time timestamptz,
  end_time timestamptz,
  location text,
  price numeric not null default 0 check (price >= 0),
  currency text not null default 'USD',
  booking_status text not null default 'planned'
    check (booking_status in ('planned', 'reserved', 'booked', 'completed', 'cancelled')),
  external_id text,
  metadata jsonb not null default '{}',
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint itinerary_items_times_ordered check (end_time is null or start_time is null or end_time >= start_time)
);
create index itinerary_items_trip_start_idx on public.itinerary_items (trip_id, start_time);

create table public.flights (
  id bigint generated always as identity primary key,
  trip_id bigint not null references public.trips (id) on delete cascade,
  origin text not null,
  destination text not null,
  departure_date date not null,
  return_date date,
  flight_class text not null default 'economy'
    check (flight_class in ('economy', 'premium_economy', 'business', 'first')),
  price numeric not null check (price >= 0),
  currency text not null default 'USD',
  airline text,
  flight_number text,
  booking_status text not null default 'available'
    check (booking_status in ('available', 'reserved', 'booked', 'cancelled')),
  external_id text,
  metadata jsonb not null default '{}',
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint flights_dates_ordered check (return_date is null or return_date >= departure_date)
);
create index flights_trip_id_idx on public.flights (trip_id);

create table public.accommodations (
  id bigint generated always as identity primary key,
  trip_id bigint not null references public.trips (id) on delete cascade,
  name text not null,
  address text,
  check_in_date date not null,
  check_out_date date not null,
  room_type text,
  price_per_night numeric not null check (price_per_night >= 0),
  total_price numeric not null check (total_price >= 0),
  currency text not null default 'USD',
  rating numeric check (rating between 0 and 5),
  amenities text[],
  booking_status text not null default 'available'
    check (booking_status in ('available', 'reserved', 'booked', 'cancelled')),
  external_id text,
  metadata jsonb not null default '{}',
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint accommodations_dates_ordered check (check_out_date > check_in_date)
);
create index accommodations_trip_id_idx on public.accommodations (trip_id);

create table public.transportation (
  id bigint generated always as identity primary key,
  trip_id bigint not null references public.trips (id) on delete cascade,
  transport_type text not null
    check (transport_type in ('flight', 'train', 'bus', 'car_rental', 'taxi', 'other')),
  origin text not null,
  destination text not null,
  departure_time timestamptz,
  arrival_time timestamptz,
  price numeric not null check (price >= 0),
  currency text not null default 'USD',
  booking_status text not null default 'available'
    check (booking_status in ('available', 'reserved', 'booked', 'cancelled')),
  external_id text,
  metadata jsonb not null default '{}',
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index transportation_trip_id_idx on public.transportation (trip_id);

-- Chat -------------------------------------------------------------------------------------------

create table public.chat_sessions (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references auth.users (id) on delete cascade,
  trip_id bigint references public.trips (id) on delete set null,
  metadata jsonb not null default '{}',
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  ended_at timestamptz
);
create index chat_sessions_user_id_idx on public.chat_sessions (user_id);
create index chat_sessions_trip_id_idx on public.chat_sessions (trip_id);

create table public.chat_messages (
  id bigint generated always as identity primary key,
  session_id uuid not null references public.chat_sessions (id) on delete cascade,
  role text not null check (role in ('user', 'assistant', 'system')),
  content text not null check (length(content) <= 32768),
  metadata jsonb not null default '{}',
  created_at timestamptz not null default now()
);
create index chat_messages_session_created_idx on public.chat_messages (session_id, created_at);
-- For the chat sweep, which looks at the last day's messages of users.
create index chat_messages_user_created_idx on public.chat_messages (created_at) where role = 'user';

create table public.chat_tool_calls (
  id bigint generated always as identity primary key,
  message_id bigint not null references public.chat_messages (id) on delete cascade,
  tool_id text not null,
  tool_name text not null,
  arguments jsonb not null default '{}',
  result jsonb,
  status text not null default 'pending' check (status in ('pending', 'running', 'completed', 'failed')),
  error_message text,
  created_at timestamptz not null default now(),
  completed_at timestamptz
);
create index chat_tool_calls_message_id_idx on public.chat_tool_calls (message_id);

-- BYOK API keys ----------------------------------------------------------------------------------

create table public.api_keys (
  id bigint generated always as identity primary key,
  user_id uuid not null references auth.users (id) on delete cascade,
  service_name text not null,
  key_name text not null,
  encrypted_key text not null,
  key_hash text not null,
  is_active boolean not null default true,
  last_used_at timestamptz,
  expires_at timestamptz,
  metadata jsonb not null default '{}',
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint api_keys_user_service_key_name_key unique (user_id, service_name, key_name)
);
create index api_keys_expires_at_idx on public.api_keys (expires_at) where is_active;

-- Memories (pgvector) ----------------------------------------------------------------------------

create table public.memories (
  id bigint generated always as identity primary key,
  user_id uuid not null references auth.users (id) on delete cascade,
  memory_type text not null default 'user_preference'
    check (memory_type in ('user_preference', 'trip_history', 'search_pattern', 'conversation_context', 'other')),
  content text not null,
  embedding extensions.vector(1536),
  embedding_content_hash text,
  embedding_lease_until timestamptz,
  embedding_lease_id uuid,
  metadata jsonb not null default '{}',
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
comment on column public.memories.embedding_content_hash is
  'md5 of the content the embedding was computed from; differs from md5(content) when stale.';
comment on column public.memories.embedding_lease_until is
  'An ai-processing invocation is embedding this memory until then.';
create index memories_user_type_idx on public.memories (user_id, memory_type);
create index memories_embedding_hnsw_idx on public.memories
  using hnsw (embedding extensions.vector_cosine_ops) with (m = 16, ef_construction = 64);
-- The unique (user, category, preference) a user_preference memory stands for.
create unique index memories_user_preference_key on public.memories
  (user_id, (metadata ->> 'category'), (metadata ->> 'preference'))
  where memory_type = 'user_preference';

-- Whether a memory needs an embedding: it has none, or its content changed since it was embedded.
-- Every query for pending work asks this function, and the partial index below is built on it.
-- It has no `set search_path` (its one call is schema-qualified) because a function with one is
-- never inlined, and only an inlined predicate lets the planner prove that a query's condition
-- implies the index's, so that the claim can use the index.
create function public.memory_embedding_is_pending(
  p_embedding extensions.vector, p_content text, p_embedded_content_hash text)
returns boolean
language sql
immutable
parallel safe
as $$ select p_embedding is null or p_embedded_content_hash is distinct from pg_catalog.md5(p_content) $$;

create index memories_pending_embedding_idx on public.memories (id)
  where public.memory_embedding_is_pending(embedding, content, embedding_content_hash);

create table public.session_memories (
  id bigint generated always as identity primary key,
  session_id uuid not null references public.chat_sessions (id) on delete cascade,
  user_id uuid not null references auth.users (id) on delete cascade,
  content text not null check (length(content) <= 8192),
  embedding extensions.vector(1536),
  -- Session memories are made once per chat message.
  source_message_id bigint unique references public.chat_messages (id) on delete set null,
  metadata jsonb not null default '{}',
  created_at timestamptz not null default now()
);
create index session_memories_session_id_idx on public.session_memories (session_id);
create index session_memories_user_created_idx on public.session_memories (user_id, created_at);

-- Notifications and metrics ----------------------------------------------------------------------

create table public.notifications (
  id bigint generated always as identity primary key,
  user_id uuid not null references auth.users (id) on delete cascade,
  type text not null,
  title text not null,
  message text not null,
  read boolean not null default false,
  metadata jsonb not null default '{}',
  dedup_key text constraint notifications_dedup_key_key unique,
  created_at timestamptz not null default now()
);
comment on column public.notifications.dedup_key is
  'Set by the edge functions (<webhook-id>:<user_id>:<type>) so that a retried delivery never makes '
  'a second notification; null for notifications made elsewhere.';
create index notifications_user_created_idx on public.notifications (user_id, created_at desc);
create index notifications_user_unread_idx on public.notifications (user_id) where not read;

create table public.system_metrics (
  id bigint generated always as identity primary key,
  metric_type text not null,
  metric_name text not null,
  value numeric not null,
  metadata jsonb not null default '{}',
  created_at timestamptz not null default now()
);
create index system_metrics_type_created_idx on public.system_metrics (metric_type, created_at desc);

-- Search caches: one table per kind of search, each row a user's cached result until expires_at.

create table public.search_destinations (
  id bigint generated always as identity primary key,
  user_id uuid not null references auth.users (id) on delete cascade,
  query text not null,
  query_hash text not null,
  results jsonb not null,
  source text not null,
  search_metadata jsonb not null default '{}',
  expires_at timestamptz not null default now() + interval '1 hour',
  created_at timestamptz not null default now()
);
create table public.search_activities (like public.search_destinations including all);
create table public.search_flights (like public.search_destinations including all);
create table public.search_hotels (like public.search_destinations including all);
create index search_destinations_lookup_idx on public.search_destinations (user_id, query_hash);
create index search_destinations_expires_idx on public.search_destinations (expires_at);
create index search_activities_lookup_idx on public.search_activities (user_id, query_hash);
create index search_activities_expires_idx on public.search_activities (expires_at);
create index search_flights_lookup_idx on public.search_flights (user_id, query_hash);
create index search_flights_expires_idx on public.search_flights (expires_at);
create index search_hotels_lookup_idx on public.search_hotels (user_id, query_hash);
create index search_hotels_expires_idx on public.search_hotels (expires_at);
alter table public.search_activities
  add foreign key (user_id) references auth.users (id) on delete cascade;
alter table public.search_flights
  add foreign key (user_id) references auth.users (id) on delete cascade;
alter table public.search_hotels
  add foreign key (user_id) references auth.users (id) on delete cascade;

-- updated_at maintenance -------------------------------------------------------------------------

do $$
declare
  t text;
begin
  foreach t in array array['trips', 'trip_collaborators', 'itinerary_items', 'flights',
    'accommodations', 'transportation', 'chat_sessions', 'api_keys', 'memories']
  loop
    execute format(
      'create trigger set_updated_at before update on public.%I
         for each row execute function public.set_updated_at()', t);
  end loop;
end;
$$;
