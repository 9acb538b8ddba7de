//! The events trip-events handles, parsed from their webhook payloads (the payloads are
//! built by the triggers and `sync_to_calendar` in `supabase/migrations/…_event_triggers.sql`).
//! A missing or malformed field is a 400 naming it.

use serde_json::{Map, Value};
use shared::{EdgeError, Fields};

use crate::calendar::{CalendarItem, CalendarTrip};

/// A change to who may work on a trip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collaboration {
    pub trip_id: i64,
    /// The collaborator.
    pub user_id: String,
    pub added_by: String,
    pub permission_level: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BookingKind {
    Flight,
    Accommodation,
}

impl BookingKind {
    fn from_table(table: &str) -> Option<Self> {
        match table {
            "flights" => Some(Self::Flight),
            "accommodations" => Some(Self::Accommodation),
            _ => None,
        }
    }

    pub fn table(self) -> &'static str {
        match self {
            Self::Flight => "flights",
            Self::Accommodation => "accommodations",
        }
    }

    pub fn noun(self) -> &'static str {
        match self {
            Self::Flight => "flight",
            Self::Accommodation => "accommodation",
        }
    }
}

/// A flight or accommodation whose booking status changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Booking {
    pub trip_id: i64,
    pub kind: BookingKind,
    pub booking_id: i64,
    pub status: String,
}

/// `sync_to_calendar()`: the trip and its itinerary as they were when it was called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarSync {
    pub user_id: String,
    pub trip: CalendarTrip,
    pub items: Vec<CalendarItem>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TripEvent {
    CollaboratorAdded(Collaboration),
    CollaboratorUpdated {
        collaboration: Collaboration,
        old_level: String,
    },
    CollaboratorRemoved(Collaboration),
    BookingConfirmed(Booking),
    BookingCancelled(Booking),
    CalendarSync(CalendarSync),
}

/// How a payload is read into the event it carries.
type Parse = fn(&Fields<'_>) -> Result<TripEvent, EdgeError>;

/// Every event trip-events handles and how its payload is read: the one place an event name is
/// written. The database's `event_catalog` routes exactly these here (its tests compare the two).
const PARSERS: &[(&str, Parse)] = &[
    ("trip.collaborator.added", |fields| {
        Ok(TripEvent::CollaboratorAdded(fields.collaboration()?))
    }),
    ("trip.collaborator.updated", |fields| {
        Ok(TripEvent::CollaboratorUpdated {
            collaboration: fields.collaboration()?,
            old_level: fields.text("old_permission_level")?,
        })
    }),
    ("trip.collaborator.removed", |fields| {
        Ok(TripEvent::CollaboratorRemoved(fields.collaboration()?))
    }),
    ("booking.confirmed", |fields| {
        Ok(TripEvent::BookingConfirmed(fields.booking(None)?))
    }),
    ("booking.flights.cancelled", |fields| {
        Ok(TripEvent::BookingCancelled(
            fields.booking(Some(BookingKind::Flight))?,
        ))
    }),
    ("booking.accommodations.cancelled", |fields| {
        Ok(TripEvent::BookingCancelled(
            fields.booking(Some(BookingKind::Accommodation))?,
        ))
    }),
    ("calendar.sync.request", |fields| {
        Ok(TripEvent::CalendarSync(fields.calendar_sync()?))
    }),
];

/// Every event trip-events handles.
pub fn events() -> impl Iterator<Item = &'static str> {
    PARSERS.iter().map(|(event, _)| *event)
}

impl TripEvent {
    pub fn parse(event: &str, payload: &Map<String, Value>) -> Result<Self, EdgeError> {
        let (_, parse) = PARSERS
            .iter()
            .find(|(name, _)| *name == event)
            .ok_or_else(|| EdgeError::UnsupportedEvent(event.to_owned()))?;
        parse(&Fields::new(payload))
    }

    /// The trip the event is about.
    pub fn trip_id(&self) -> i64 {
        match self {
            Self::CollaboratorAdded(c)
            | Self::CollaboratorUpdated {
                collaboration: c, ..
            }
            | Self::CollaboratorRemoved(c) => c.trip_id,
            Self::BookingConfirmed(b) | Self::BookingCancelled(b) => b.trip_id,
            Self::CalendarSync(sync) => sync.trip.trip_id,
        }
    }
}

/// The event's records, read from the payload's fields.
trait Records {
    fn collaboration(&self) -> Result<Collaboration, EdgeError>;
    fn booking(&self, expected: Option<BookingKind>) -> Result<Booking, EdgeError>;
    fn calendar_sync(&self) -> Result<CalendarSync, EdgeError>;
}

impl Records for Fields<'_> {
    fn collaboration(&self) -> Result<Collaboration, EdgeError> {
        Ok(Collaboration {
            trip_id: self.id("trip_id")?,
            user_id: self.uuid("user_id")?,
            added_by: self.uuid("added_by")?,
            permission_level: self.text("permission_level")?,
        })
    }

    /// `expected` is the kind the event name implies; `booking.confirmed` takes `booking_type`.
    fn booking(&self, expected: Option<BookingKind>) -> Result<Booking, EdgeError> {
        let table = self.text("booking_type")?;
        let kind = BookingKind::from_table(&table).ok_or_else(|| {
            EdgeError::invalid_field("booking_type", "expected flights or accommodations")
        })?;
        if expected.is_some_and(|expected| expected != kind) {
            return Err(EdgeError::invalid_field(
                "booking_type",
                "does not match the event's booking type",
            ));
        }
        Ok(Booking {
            trip_id: self.id("trip_id")?,
            kind,
            booking_id: self.id("booking_id")?,
            status: self.text("new_status")?,
        })
    }

    fn calendar_sync(&self) -> Result<CalendarSync, EdgeError> {
        let trip = CalendarTrip {
            trip_id: self.id("trip_id")?,
            name: self.text("trip_name")?,
            destination: self.text("destination")?,
            start_date: self.text("start_date")?,
            end_date: self.text("end_date")?,
        };
        let items = self.each("items", |item| {
            Ok(CalendarItem {
                id: item.id("id")?,
                title: item.text("title")?,
                description: item.optional_text("description")?,
                item_type: item.text("item_type")?,
                location: item.optional_text("location")?,
                start_time: item.optional_text("start_time")?,
                end_time: item.optional_text("end_time")?,
                updated_at: item.text("updated_at")?,
            })
        })?;
        Ok(CalendarSync {
            user_id: self.uuid("user_id")?,
            trip,
            items,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ADA: &str = "0b9a7c1e-5d7b-4f4e-9a51-0d1c2b3a4f50";
    const BOB: &str = "9f8e7d6c-5b4a-4f3e-8d2c-1b0a9f8e7d6c";

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn collaborator_events_parse() {
        let payload = object(json!({
            "event": "trip.collaborator.updated", "trip_id": 7, "user_id": ADA, "added_by": BOB,
            "permission_level": "edit", "old_permission_level": "view", "operation": "UPDATE",
        }));
        assert_eq!(
            TripEvent::parse("trip.collaborator.updated", &payload).unwrap(),
            TripEvent::CollaboratorUpdated {
                collaboration: Collaboration {
                    trip_id: 7,
                    user_id: ADA.into(),
                    added_by: BOB.into(),
                    permission_level: "edit".into(),
                },
                old_level: "view".into(),
            }
        );
    }

    #[test]
    fn booking_events_check_their_kind() {
        let payload = object(json!({
            "trip_id": 7, "booking_type": "flights", "booking_id": 3, "new_status": "cancelled",
        }));
        let event = TripEvent::parse("booking.flights.cancelled", &payload).unwrap();
        assert_eq!(event.trip_id(), 7);
        let error = TripEvent::parse("booking.accommodations.cancelled", &payload).unwrap_err();
        assert_eq!(error.field(), Some("booking_type"));
    }

    #[test]
    fn bad_fields_are_named() {
        let base =
            json!({"trip_id": 7, "user_id": ADA, "added_by": BOB, "permission_level": "view"});
        let cases = [
            ("trip_id", json!(null), "trip_id"),
            ("trip_id", json!("7"), "trip_id"),
            ("trip_id", json!(-1), "trip_id"),
            ("user_id", json!("not-a-uuid"), "user_id"),
            ("added_by", json!(5), "added_by"),
        ];
        for (name, value, field) in cases {
            let mut payload = object(base.clone());
            payload.insert(name.into(), value);
            let error = TripEvent::parse("trip.collaborator.added", &payload).unwrap_err();
            assert_eq!(error.field(), Some(field), "{name}");
            assert_eq!(error.status(), 400);
        }
        let error = TripEvent::parse("trip.archived", &object(base)).unwrap_err();
        assert_eq!(error.status(), 422);
    }

    #[test]
    fn calendar_requests_carry_their_items() {
        let payload = object(json!({
            "user_id": ADA, "trip_id": 7, "trip_name": "Rome", "destination": "Rome, Italy",
            "start_date": "2027-05-01", "end_date": "2027-05-08",
            "items": [
                {"id": 1, "title": "Flight", "description": null, "item_type": "flight",
                 "location": "FCO", "start_time": "2027-05-01T08:00:00+00:00", "end_time": null,
                 "updated_at": "2026-11-25T10:00:00+00:00"},
                {"id": 2, "title": 5, "item_type": "activity", "updated_at": "x"},
            ],
        }));
        let error = TripEvent::parse("calendar.sync.request", &payload).unwrap_err();
        assert_eq!(error.field(), Some("items[1].title"));
        let mut payload = payload;
        payload["items"].as_array_mut().unwrap().pop();
        let TripEvent::CalendarSync(sync) =
            TripEvent::parse("calendar.sync.request", &payload).unwrap()
        else {
            panic!("a calendar sync");
        };
        assert_eq!(sync.items.len(), 1);
        assert_eq!(sync.items[0].location.as_deref(), Some("FCO"));
        assert_eq!(sync.trip.start_date, "2027-05-01");
    }

    #[test]
    fn every_listed_event_is_parsed_and_no_other() {
        for event in events() {
            let error = TripEvent::parse(event, &Map::new()).unwrap_err();
            assert!(
                !matches!(error, EdgeError::UnsupportedEvent(_)),
                "{event} is listed but not parsed"
            );
        }
        assert!(matches!(
            TripEvent::parse("chat.message.process", &Map::new()),
            Err(EdgeError::UnsupportedEvent(_))
        ));
    }
}
