"""The scheduling capability's public module: providers and their slots, booking and changing
appointments, their paged lists, the FHIR R4 views and the demo calendars."""

from shared.scheduling.booking import Booked, Scheduling
from shared.scheduling.demo import DEMO_PROVIDERS, seed_scheduling_demo
from shared.scheduling.documents import AppointmentDocument, ProviderDocument
from shared.scheduling.lists import appointments_around, list_providers, patient_appointments, provider_day
from shared.scheduling.merge import move_patient_appointments
from shared.scheduling.model import (
    PROVIDER_ID_PATTERN,
    Appointment,
    AppointmentList,
    AppointmentListQuery,
    AppointmentSearch,
    BookingRequest,
    Calendar,
    FhirAppointment,
    FhirBundle,
    FhirSlotQuery,
    FreeSlots,
    Provider,
    ProviderList,
    ProviderListQuery,
    ProviderView,
    RescheduleRequest,
    SlotQuery,
    StatusRequest,
    check_provider_id,
    fhir_appointment,
    fhir_searchset,
    fhir_slot,
)
from shared.scheduling.model import (
    Status as AppointmentStatus,
)
from shared.scheduling.providers import appointment_etag, appointment_view, provider_view

__all__ = [
    "DEMO_PROVIDERS",
    "PROVIDER_ID_PATTERN",
    "Appointment",
    "AppointmentDocument",
    "AppointmentList",
    "AppointmentListQuery",
    "AppointmentSearch",
    "AppointmentStatus",
    "Booked",
    "BookingRequest",
    "Calendar",
    "FhirAppointment",
    "FhirBundle",
    "FhirSlotQuery",
    "FreeSlots",
    "Provider",
    "ProviderDocument",
    "ProviderList",
    "ProviderListQuery",
    "ProviderView",
    "RescheduleRequest",
    "Scheduling",
    "SlotQuery",
    "StatusRequest",
    "appointment_etag",
    "appointment_view",
    "appointments_around",
    "check_provider_id",
    "fhir_appointment",
    "fhir_searchset",
    "fhir_slot",
    "list_providers",
    "move_patient_appointments",
    "patient_appointments",
    "provider_day",
    "provider_view",
    "seed_scheduling_demo",
]
