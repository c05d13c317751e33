"""The gateway's settings: one frozen object in six sections (server, runtime, admission,
lifecycle, cloud, feedback), built once at the program's edge.

``edge-server --help`` prints every field's help text, grouped by section; the README's
configuration table lists the same names.
"""

from edge_server.settings.fields import (
    ENV_PREFIX,
    GRAPH_OPTIMIZATION_LEVELS,
    SHARED_MEMORY_MODES,
    default_cpu_count,
)
from edge_server.settings.gateway import FIELD_HELP, SECTION_OF, Settings, setting_fields
from edge_server.settings.link_sections import CloudSettings, FeedbackSettings
from edge_server.settings.loading import (
    load_settings,
    parse_pins,
    read_config_file,
    settings_to_json,
)
from edge_server.settings.sections import (
    SECTIONS,
    AdmissionSettings,
    LifecycleSettings,
    RuntimeSettings,
    ServerSettings,
)

__all__ = [
    "ENV_PREFIX",
    "FIELD_HELP",
    "GRAPH_OPTIMIZATION_LEVELS",
    "SECTIONS",
    "SECTION_OF",
    "SHARED_MEMORY_MODES",
    "AdmissionSettings",
    "CloudSettings",
    "FeedbackSettings",
    "LifecycleSettings",
    "RuntimeSettings",
    "ServerSettings",
    "Settings",
    "default_cpu_count",
    "load_settings",
    "parse_pins",
    "read_config_file",
    "setting_fields",
    "settings_to_json",
]
