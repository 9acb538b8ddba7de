-- Row level security on the contents of a trip: itinerary_items, flights, accommodations and
-- transportation share one set of policies (trip members view; the owner, admins and editors add,
-- change and remove; view collaborators only look), so one function checks each table the same
-- way, as every actor.
begin;
create extension if not exists pgtap with schema extensions;
\ir helpers.psql

select plan(128);

-- Actors, by name, readable whichever role is current.
create temp table actor (name text primary key, id uuid not null);
grant select on actor to public;
insert into actor
select name, pg_temp.create_user(name || '@example.com')
from unnest(array['owner', 'admin', 'editor', 'viewer', 'stranger']) name;
create function pg_temp.uid(p_name text) returns uuid language sql stable
as $$ select id from pg_temp.actor where name = p_name $$;

-- Switches to an actor by name: a user above, anon or service_role.
create function pg_temp.become(p_name text) returns void language plpgsql
as $$
begin
  case p_name
    when 'anon' then perform pg_temp.act_as_anon();
    when 'service_role' then perform pg_temp.act_as_service_role();
    else perform pg_temp.act_as(pg_temp.uid(p_name));
  end case;
end;
$$;

-- How a test name calls an actor.
create function pg_temp.who(p_name text) returns text language sql immutable
as $$
  select case p_name
    when 'owner' then 'the owner' when 'admin' then 'an admin collaborator'
    when 'editor' then 'an edit collaborator' when 'viewer' then 'a view collaborator'
    when 'stranger' then 'a stranger' else p_name end
$$;

-- The trip under test and a trip of the stranger's, on which the editor only views.
create temp table fixture (trip bigint, other_trip bigint);
grant select on fixture to public;
with trip as (
  insert into public.trips (user_id, name, start_date, end_date, destination)
  values (pg_temp.uid('owner'), 'Kyoto in spring', '2027-04-01', '2027-04-10', 'Kyoto, Japan'),
         (pg_temp.uid('stranger'), 'Lisbon weekend', '2027-05-01', '2027-05-03', 'Lisbon, Portugal')
  returning id, user_id)
insert into fixture
select (select id from trip where user_id = pg_temp.uid('owner')),
       (select id from trip where user_id = pg_temp.uid('stranger'));
insert into public.trip_collaborators (trip_id, user_id, added_by, permission_level)
select (select trip from fixture), pg_temp.uid(name), pg_temp.uid('owner'), level
from (values ('admin', 'admin'), ('editor', 'edit'), ('viewer', 'view')) v (name, level);
insert into public.trip_collaborators (trip_id, user_id, added_by, permission_level)
select (select other_trip from fixture), pg_temp.uid('editor'), pg_temp.uid('stranger'), 'view';

-- Every policy of one trip-content table, as every actor. p_columns/p_values make a row of the
-- table with %1$s standing for its trip id. Returns 32 TAP lines.
create function pg_temp.check_trip_content(p_table text, p_columns text, p_values text)
returns setof text
language plpgsql
as $$
declare
  v_trip bigint := (select trip from pg_temp.fixture);
  v_other_trip bigint := (select other_trip from pg_temp.fixture);
  v_what text := replace(p_table, '_', ' ');
  v_insert text := format('insert into public.%I (%s) values (%s)', p_table, p_columns, p_values);
  v_count text := format('select count(*) from public.%I where trip_id = %s', p_table, v_trip);
  v_row bigint;
  v_rows bigint[];
  v_name text;
  v_external_id text;
begin
  -- One row on the trip, written by the database owner.
  perform pg_temp.act_as_owner();
  execute format(v_insert || ' returning id', v_trip) into v_row;

  -- select
  foreach v_name in array array['owner', 'admin', 'editor', 'viewer'] loop
    perform pg_temp.become(v_name);
    return next results_eq(format('select id from public.%I where trip_id = %s', p_table, v_trip),
      array[v_row], format('%s sees the trip''s %s', pg_temp.who(v_name), v_what));
  end loop;
  perform pg_temp.become('stranger');
  return next is_empty(format('select id from public.%I where trip_id = %s', p_table, v_trip),
    format('a stranger sees none of the trip''s %s', v_what));
  perform pg_temp.become('anon');
  return next is_empty(format('select id from public.%I', p_table), format('anon sees no %s', v_what));
  perform pg_temp.become('service_role');
  return next results_eq(v_count, array[1::bigint], format('service_role sees all %s', v_what));

  -- insert
  foreach v_name in array array['owner', 'admin', 'editor'] loop
    perform pg_temp.become(v_name);
    return next lives_ok(format(v_insert, v_trip), format('%s adds %s', pg_temp.who(v_name), v_what));
  end loop;
  return next throws_ok(format(v_insert, v_other_trip), '42501', null,
    format('an edit collaborator cannot add %s to a trip they only view', v_what));
  foreach v_name in array array['viewer', 'stranger', 'anon'] loop
    perform pg_temp.become(v_name);
    return next throws_ok(format(v_insert, v_trip), '42501', null,
      format('%s cannot add %s', pg_temp.who(v_name), v_what));
  end loop;
  perform pg_temp.become('service_role');
  return next lives_ok(format(v_insert, v_trip), format('service_role adds %s', v_what));
  perform pg_temp.act_as_owner();
  return next results_eq(v_count, array[5::bigint], format('exactly the allowed %s were added', v_what));

  -- update: each actor in turn stamps external_id on the first row; the database owner looks.
  foreach v_name in array array['owner', 'admin', 'editor', 'viewer', 'stranger', 'anon', 'service_role'] loop
    perform pg_temp.become(v_name);
    execute format('update public.%I set external_id = %L where id = %s', p_table, 'changed by ' || v_name, v_row);
    perform pg_temp.act_as_owner();
    execute format('select external_id from public.%I where id = %s', p_table, v_row) into v_external_id;
    if v_name in ('viewer', 'stranger', 'anon') then
      return next is(v_external_id, 'changed by editor', format('%s cannot change %s', pg_temp.who(v_name), v_what));
    else
      return next is(v_external_id, 'changed by ' || v_name, format('%s changes %s', pg_temp.who(v_name), v_what));
    end if;
  end loop;
  perform pg_temp.become('editor');
  return next throws_ok(format('update public.%I set trip_id = %s where id = %s', p_table, v_other_trip, v_row),
    '42501', null, format('an edit collaborator cannot move %s to a trip they only view', v_what));

  -- delete: the viewer, the stranger and anon try to delete every row...
  foreach v_name in array array['viewer', 'stranger', 'anon'] loop
    perform pg_temp.become(v_name);
    execute format('delete from public.%I', p_table);
    perform pg_temp.act_as_owner();
    return next results_eq(v_count, array[5::bigint], format('%s cannot remove %s', pg_temp.who(v_name), v_what));
  end loop;
  -- ...then the owner, the admin, the editor and service_role each delete one.
  execute format('select array_agg(id order by id) from public.%I where trip_id = %s', p_table, v_trip) into v_rows;
  foreach v_name in array array['owner', 'admin', 'editor', 'service_role'] loop
    v_row := v_rows[array_position(array['owner', 'admin', 'editor', 'service_role'], v_name)];
    perform pg_temp.become(v_name);
    execute format('delete from public.%I where id = %L', p_table, v_row);
    perform pg_temp.act_as_owner();
    return next is_empty(format('select id from public.%I where id = %L', p_table, v_row),
      format('%s removes %s', pg_temp.who(v_name), v_what));
  end loop;
  return next results_eq(v_count, array[1::bigint], format('and only those %s are gone', v_what));
end;
$$;

select * from pg_temp.check_trip_content('itinerary_items',
  'trip_id, title, item_type, start_time, location',
  $$%1$s, 'Fushimi Inari', 'activity', '2027-04-02 07:00+09', 'Fushimi'$$);
select * from pg_temp.check_trip_content('flights',
  'trip_id, origin, destination, departure_date, price',
  $$%1$s, 'LIS', 'KIX', '2027-04-01', 850$$);
select * from pg_temp.check_trip_content('accommodations',
  'trip_id, name, check_in_date, check_out_date, price_per_night, total_price',
  $$%1$s, 'Ryokan Sawaya', '2027-04-01', '2027-04-05', 120, 480$$);
select * from pg_temp.check_trip_content('transportation',
  'trip_id, transport_type, origin, destination, price',
  $$%1$s, 'train', 'Kyoto', 'Osaka', 15$$);

select * from finish();
rollback;
