"""Virtual wearables: real GATT servers on bumble's in-process link.

A :class:`VirtualWorld` owns a bumble ``LocalLink``, the virtual wearables on it and the
centrals that the bleak backend (:mod:`adapters.ble.bumble_backend`) creates. Each wearable
is a bumble ``Device`` with its own controller that advertises its services, accepts
connections, answers reads and sends notifications or indications at its own pace, with
values taken from a provider (a zero-argument callable; the simulator's patient or a
constant in a test).

- :class:`VirtualChestStrap` — Heart Rate service 0x180D (measurement with sensor contact,
  RR intervals and energy expended; body sensor location "chest"; control point) and
  Battery 0x180F.
- :class:`VirtualSkinSensor` — Health Thermometer 0x1809 (Temperature Measurement 0x2A1C
  by indication, with time stamp; measurements taken while nobody listens are stored and
  sent after the next subscription, and the last one sent before a drop is sent again, as
  a thermometer does when it never saw the confirmation; optionally Intermediate
  Temperature 0x2A1E by notification), Temperature Type, Battery.
- :class:`VirtualEssSensor` — Environmental Sensing 0x181A (Temperature 0x2A6E, read and
  notify), Battery.
- :class:`VirtualCoreSensor` — the CORE custom service (0x2101 notify: core and skin
  temperature, quality, heat-strain index; 0x2102 control point), HTS 0x2A1C (notify, as the
  real sensor), Battery, and the current core temperature in its advert's manufacturer
  data.

Adverts carry the flags, service UUIDs, name and manufacturer data (see
:meth:`VirtualWearable._advertising_data` for why not split into a scan response).

``drop_connection()`` ends the link from the wearable's side (the adapter sees an
unsolicited disconnect), ``stop_advertising()`` makes it vanish (out of range) and
``start_advertising()`` brings it back.
"""

from __future__ import annotations

from adapters.ble.virtual.sensors import CONTROL_POINT_NOT_SUPPORTED as CONTROL_POINT_NOT_SUPPORTED
from adapters.ble.virtual.sensors import CONTROL_POINT_RESPONSE as CONTROL_POINT_RESPONSE
from adapters.ble.virtual.sensors import CORE_STATUS_MEASURING as CORE_STATUS_MEASURING
from adapters.ble.virtual.sensors import VirtualChestStrap as VirtualChestStrap
from adapters.ble.virtual.sensors import VirtualCoreSensor as VirtualCoreSensor
from adapters.ble.virtual.sensors import VirtualEssSensor as VirtualEssSensor
from adapters.ble.virtual.sensors import VirtualSkinSensor as VirtualSkinSensor
from adapters.ble.virtual.wearable import ADVERTISING_INTERVAL_MS as ADVERTISING_INTERVAL_MS
from adapters.ble.virtual.wearable import CENTRAL_ADDRESS_PREFIX as CENTRAL_ADDRESS_PREFIX
from adapters.ble.virtual.wearable import INDICATION_TIMEOUT_S as INDICATION_TIMEOUT_S
from adapters.ble.virtual.wearable import STORED_MEASUREMENTS as STORED_MEASUREMENTS
from adapters.ble.virtual.wearable import ValueProvider as ValueProvider
from adapters.ble.virtual.wearable import VirtualWearable as VirtualWearable
from adapters.ble.virtual.world import VirtualWorld as VirtualWorld
from adapters.ble.virtual.world import VitalsFeed as VitalsFeed
from adapters.ble.virtual.world import VitalsLike as VitalsLike
