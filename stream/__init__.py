"""engagement-stream: LivePerson engagement attributes as typed Avro topics."""

__version__ = "0.1.0"
