/*
 * An edit window for one OrbitLab object, the way Proxmox.window.Edit
 * works, except that its submit is a plan preview first: the form's values
 * become a manifest (fields are named after the manifest's own fields,
 * 'metadata.name', 'spec.cidr'), the agent checks it (dry run), the
 * preview lists what would change, and only its Apply writes. Errors the
 * agent reports for a field ('spec.cidr': reason) are shown on that field.
 */
Ext.define('OrbitLab.window.Edit', {
    extend: 'Proxmox.window.Edit',
    alias: 'widget.orbitlabEdit',

    // The manifest kind ('Sector').
    kind: undefined,
    // The object as the agent answered it (edit), or undefined (create).
    object: undefined,
    // Called after an apply.
    applied: Ext.emptyFn,
    // Whether this user may apply (OrbitLab.Utils.may); without it the
    // preview is all there is.
    canApply: false,

    // Proxmox.window.Edit requires a URL; submit() below sends the
    // manifest through the plan preview instead.
    url: '/api2/extjs/orbitlab-apply',
    submitText: gettext('Preview'),

    // Values of the form from an object (override for fields not stored
    // as they are shown).
    valuesOf: function (object) {
        let values = { 'metadata.name': object.metadata.name };
        if (object.metadata.description) {
            values['metadata.description'] = object.metadata.description;
        }
        return values;
    },

    // The manifest from the form's values (override to convert fields).
    manifestOf: function (values) {
        return OrbitLab.Utils.manifest(this.kind, values, this.object);
    },

    // The form's field names for the errors the agent reported
    // ({'spec.cidr': reason}).
    formErrors: function (errors) {
        return OrbitLab.Utils.errorsForForm(errors);
    },

    submit: function () {
        let me = this;
        let form = me.formPanel.getForm();
        let manifest = me.manifestOf(me.getValues());
        Ext.create('OrbitLab.window.PlanPreview', {
            autoShow: true,
            manifests: [manifest],
            canApply: me.canApply,
            refused: function (response) {
                let errors = response.result && response.result.errors;
                if (errors) {
                    form.markInvalid(me.formErrors(errors));
                }
            },
            applied: function (changes) {
                me.applied(changes);
                me.close();
            },
        });
    },

    initComponent: function () {
        let me = this;
        me.isCreate = !me.object;
        me.callParent();
        if (me.object) {
            me.setValues(me.valuesOf(me.object));
            let name = me.down('field[name=metadata.name]');
            if (name) {
                name.setReadOnly(true);
            }
        }
    },
});
