"""The live dashboard: caregivers' tiles, the patient's calm view and the history view,
served by aiohttp with Server-Sent Events (see ``docs/dashboards.md``)."""
