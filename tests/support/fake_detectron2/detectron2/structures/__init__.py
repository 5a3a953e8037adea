class Instances:
    def __init__(self, image_size, **fields):
        self.image_size = image_size
        self._fields = dict(fields)

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._fields[name]
        except KeyError:
            raise AttributeError(name) from None

    def set(self, name, value):
        self._fields[name] = value

    def to(self, device):
        return Instances(self.image_size, **{k: v.to(device) for k, v in self._fields.items()})
