-- An owner inserting a trip with `RETURNING` (supabase-js `.insert(…).select()`, PostgREST's
-- `Prefer: return=representation`) must see the new row. The SELECT policy ran only
-- `can_view_trip(id)`, whose lookup of `trips` cannot see a row inserted by the same statement,
-- so the insert failed with "new row violates row-level security policy". Ownership is now checked
-- on the row itself first.
alter policy "Trip members can view trips" on public.trips
  using (user_id = (select auth.uid()) or public.can_view_trip(id));
