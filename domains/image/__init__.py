"""The image domain: presigned uploads to the image service and the objects they store.

A signed-in client asks ``POST /api/v1/images/{channel}`` for an upload URL, PUTs the file to it
(the URL's HMAC signature is the credential, so that route needs no sign-in), and sends the
returned ``cdn_url`` as a scan's or chat's ``image_url``. A stored upload emits ``ImageUploaded``
(aggregate ``image``, id = the object key). The domain reacts to no events.
"""
