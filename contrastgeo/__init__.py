"""ContrastGeo: few-shot geolocation of social-media posts."""
